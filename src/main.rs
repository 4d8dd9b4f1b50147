//! # mlsoc
//!
//! The `mlsoc` command: a SIEM log normalizer and SOC event pipeline for
//! machine-learning platforms. This binary wires the crates together:
//! `collector` reads inputs, `normalizer` turns records into ECS events (or
//! dead-letter records), and the subcommands write them out.
//!
//! Exit codes (also in `mlsoc --help`):
//! - 0: success (dead-letter records may have been written; see the summary)
//! - 1: `--strict` was given and at least one record went to the dead-letter queue
//! - 2: usage or configuration error (unknown flag or format, invalid format file, bad time zone)
//! - 3: some input could not be read (missing, unreadable, truncated gzip); the others were processed
//! - 4: the output could not be written

mod coverage_cmd;
mod formats_cmd;
mod hunt_cmd;
mod normalize_cmd;
mod profile_cmd;
mod rule_tests;
mod rules_cmd;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc malloc: events are allocated and freed in
/// batches, and glibc returned the freed pages to the kernel only to fault
/// them in again (a fifth of the single-core normalize time, measured with
/// `perf` on the access-log benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Option numbers of `mi_option_t` in mimalloc 3 (mimalloc.h), which
// libmimalloc-sys 0.1.49 does not name.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 3 commits its arenas eagerly on Linux, so the pages it purges
/// after frees stay counted in RSS, and it waits a second before purging
/// (`purge_delay` 1000 ms). The pipeline frees whole batches at a time:
/// more than half of the daemon's RSS was freed memory (bench file sink
/// with the rule pack: 160 MiB, about 70 MiB with these values; the
/// Elasticsearch fake with SigmaHQ: 310 MiB, under 200 MiB), at no
/// measurable throughput cost. A `MIMALLOC_*` variable in the environment
/// still wins.
///
/// An arena's commit mode is fixed when mimalloc reserves it, at its first
/// allocation, before `main`: so this runs as an ELF constructor with a
/// priority, which runs before mimalloc's own (unprioritized) one. It must
/// not allocate.
extern "C" fn tune_allocator() {
    unsafe extern "C" {
        fn getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
    }
    for (var, option, value) in [
        (c"MIMALLOC_ARENA_EAGER_COMMIT", ARENA_EAGER_COMMIT, 0),
        (c"MIMALLOC_PURGE_DELAY", PURGE_DELAY, 100),
    ] {
        // SAFETY: `getenv` reads the environment, which nothing writes this
        // early; `mi_option_set` stores a value in mimalloc's option table
        // (no allocation), and any value is valid for these two options.
        unsafe {
            if getenv(var.as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(option, value);
            }
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00200")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

const EXIT_CODES: &str = "Exit codes:
  0  success (dead-letter records may have been written; see the summary)
  1  --strict was given and at least one record went to the dead-letter queue
  2  usage or configuration error (unknown flag or format, invalid format file, bad time zone)
  3  some input could not be read (missing, unreadable, truncated gzip); the others were processed
  4  the output could not be written";

#[derive(Parser)]
#[command(name = "mlsoc", version, about = "SIEM log normalizer and SOC event pipeline for ML platforms", after_help = EXIT_CODES)]
struct Cli {
    /// Log filter for mlsoc's own diagnostics on stderr (e.g. `debug`, `normalizer=trace`); also RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Normalize log files, directories, gzip files or stdin to ECS NDJSON.
    #[command(after_help = EXIT_CODES)]
    Normalize(NormalizeArgs),
    /// List the formats mlsoc reads, with a sample line of each.
    Formats(FormatsArgs),
    /// Normalize log files (formats detected) and run Sigma rules over them: a table of hits, or
    /// NDJSON alerts with --json.
    #[command(after_help = HUNT_EXIT_CODES)]
    Hunt(HuntArgs),
    /// Work with Sigma rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Evaluate Sigma rules over JSON events exactly as given (no normalization, no field mapping,
    /// no logsource routing): one NDJSON line per match with the rule and the input line number.
    #[command(after_help = EVAL_EXIT_CODES)]
    Eval(EvalArgs),
    /// Run the pipeline as a daemon: tail sources, normalize, detect, deliver to sinks, with
    /// checkpoints that advance only as sinks acknowledge. Without --config, tails the bundled
    /// samples.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(run::RunArgs),
    /// Check a `mlsoc run` configuration: every error with its line.
    #[command(after_help = "Exit codes:\n  0  valid\n  2  invalid (every error listed on stdout)")]
    Validate(run::ValidateArgs),
}

const RUN_EXIT_CODES: &str = "Exit codes:
  0  stopped cleanly (signal, or every source ended)
  2  invalid configuration or data directory in use
  4  a sink failed for good";

const EVAL_EXIT_CODES: &str = "Exit codes:
  0  success (lines that are not JSON objects are reported on stderr and skipped)
  2  usage error (unknown flag, missing rules path, bad placeholder file)
  3  the events could not be read
  4  the matches could not be written";

const HUNT_EXIT_CODES: &str = "Exit codes:
  0  success (with or without detections)
  1  --fail-level was given and an alert at or above that level fired
  2  usage or configuration error (no usable rule, unknown format, bad option)
  3  some input could not be read; the others were processed
  4  the output could not be written";

#[derive(Args)]
pub struct HuntArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub pipelines: PipelineArgs,
    /// Write one ECS alert per line (NDJSON) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 1 when an alert at or above this level fires (informational, low, medium,
    /// high, critical).
    #[arg(long, value_name = "LEVEL")]
    pub fail_level: Option<String>,
    /// Matched events held in memory to be put in time order before correlations run (one
    /// timeline across files); past it they are processed in batches.
    #[arg(long, value_name = "EVENTS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub order_buffer: u64,
}

/// The processing pipelines rules are loaded through (shared by `hunt` and `rules profile`).
#[derive(Args)]
pub struct PipelineArgs {
    /// Processing pipeline (YAML, see docs/pipelines.md) applied to the rules after the built-in
    /// ones; may be repeated.
    #[arg(long, value_name = "FILE")]
    pub pipeline: Vec<PathBuf>,
    /// Do not apply the built-in pipelines (Sigma taxonomy to mlsoc's ECS fields, log source
    /// routing).
    #[arg(long)]
    pub no_builtin_pipelines: bool,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files: every error with file:line and a reason.
    #[command(
        after_help = "Exit codes:\n  0  every rule loaded\n  1  at least one rule has an error (listed on stdout)\n  2  usage error"
    )]
    Check(RulesCheckArgs),
    /// Run the rule tests (`*.tests.yml` beside the rules, see docs/rule-tests.md): raw log lines
    /// are normalized and every case checks that its rule fires, or does not; reports per rule.
    #[command(
        after_help = "Exit codes:\n  0  every case passed and every alerting rule has a match and a no_match case\n  1  a case failed, a rule is untested, or a rule or test file has an error\n  2  usage error"
    )]
    Test(rule_tests::TestArgs),
    /// Coverage of a rule set: a Markdown table (rule, component, ATLAS technique, fields,
    /// response) or an ATLAS Navigator layer (JSON).
    Coverage(coverage_cmd::CoverageArgs),
    /// What each rule costs on given logs: normalize them (as `hunt` does), evaluate the rules,
    /// and list the rules that took the most time, with their evaluations and matches, and the
    /// detection time per event of each dataset.
    #[command(
        after_help = "Exit codes:\n  0  success\n  2  usage or configuration error (no usable rule, unknown format)\n  3  some input could not be read; the others were processed\n  4  the output could not be written"
    )]
    Profile(profile_cmd::ProfileArgs),
}

/// Where rules come from, and the values of their placeholders.
#[derive(Args, Clone)]
pub struct RuleArgs {
    /// Rule files or directories (searched recursively for .yml/.yaml, leaving out `*.tests.yml`);
    /// may be repeated. Default: mlsoc's ML threat rule pack, compiled in.
    #[arg(long, value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    #[command(flatten)]
    pub placeholders: PlaceholderArgs,
}

/// Values of the rules' `expand` placeholders (allowlists). The rule pack's defaults
/// (docs/detections.md) apply unless replaced here, name by name.
#[derive(Args, Clone, Default)]
pub struct PlaceholderArgs {
    /// YAML map of placeholder names to value lists, for the `expand` modifier; may be repeated
    /// (a later file replaces an earlier file's values of the same name).
    #[arg(long = "placeholders", value_name = "FILE")]
    pub placeholders_files: Vec<PathBuf>,
    /// One placeholder's values: NAME=VALUE[,VALUE...]; replaces the values from files and
    /// defaults; may be repeated (values of the same name add up).
    #[arg(long, value_name = "NAME=VALUES")]
    pub placeholder: Vec<String>,
}

#[derive(Args)]
pub struct RulesCheckArgs {
    /// Rule files or directories.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub placeholders: PlaceholderArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// NDJSON events; `-` or nothing reads stdin.
    #[arg(value_name = "EVENTS")]
    pub input: Option<PathBuf>,
}

#[derive(Args)]
pub struct FormatFiles {
    /// Extra format definitions (TOML, see docs/formats.md); may be repeated.
    #[arg(long = "formats-file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// What to read and how to normalize it (shared by `normalize` and `hunt`).
#[derive(Args)]
pub struct InputArgs {
    /// Files or directories to read (recursively; `.mlsocignore` files are honoured); `-` or nothing reads stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Parse every input with this format instead of detecting it (see `mlsoc formats`).
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
    #[command(flatten)]
    pub formats: FormatFiles,
    /// Time zone of timestamps that carry none: UTC, an offset (+02:00) or an IANA name (Europe/Berlin).
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub timezone: String,
    /// Longest record kept; longer ones go to the dead-letter queue with their head.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_record_bytes: usize,
    /// Longest whole-file JSON document (CloudTrail log files) kept.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_document_bytes: usize,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Pin the clock (RFC 3339): ingest time, inferred timestamps and the reference for year-less
    /// timestamps, for reproducible output.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<schema::Timestamp>,
}

#[derive(Args)]
pub struct NormalizeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write events (NDJSON); `-` is stdout.
    #[arg(long, short = 'o', value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Where to write dead-letter records (NDJSON); `-` is stderr. Default: `<output>.dlq` next to
    /// the output file, or stderr when events go to stdout.
    #[arg(long, value_name = "FILE")]
    pub dlq: Option<PathBuf>,
    /// Write a JSON summary with per-input counts to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Exit with code 1 when any record went to the dead-letter queue.
    #[arg(long)]
    pub strict: bool,
}

fn parse_time(s: &str) -> Result<schema::Timestamp, String> {
    schema::Timestamp::parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time such as 2026-11-30T12:00:00Z"))
}

#[derive(Args)]
pub struct FormatsArgs {
    #[command(flatten)]
    pub formats: FormatFiles,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list the enrichment steps format definitions can use.
    #[arg(long)]
    pub steps: bool,
}

fn init_tracing(filter: Option<&str>) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.as_deref());
    let result = match cli.command {
        Command::Normalize(args) => normalize_cmd::run(args),
        Command::Formats(args) => formats_cmd::run(args),
        Command::Hunt(args) => hunt_cmd::run(args),
        Command::Rules(RulesCommand::Check(args)) => rules_cmd::check(args),
        Command::Rules(RulesCommand::Test(args)) => rule_tests::run(args),
        Command::Rules(RulesCommand::Coverage(args)) => coverage_cmd::run(args),
        Command::Rules(RulesCommand::Profile(args)) => profile_cmd::run(args),
        Command::Eval(args) => rules_cmd::eval(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => run::validate(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mlsoc: {e:#}");
            ExitCode::from(e.downcast_ref::<Exit>().map_or(2, |x| x.0))
        }
    }
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Loads the built-in formats plus the given files (exit 2 on errors).
pub fn load_registry(files: &FormatFiles) -> anyhow::Result<normalizer::Registry> {
    normalizer::Registry::with_files(&files.files)
        .map_err(|e| anyhow::Error::new(Exit(2)).context(format!("cannot load formats: {e}")))
}

#[cfg(test)]
mod tests {
    /// The constructor ran before `main` (and before the test harness),
    /// and the option numbers name the options meant: mimalloc reports the
    /// tuned values, where its defaults are 2 ("on overcommit systems") and
    /// 1000 ms.
    #[test]
    fn allocator_options_are_tuned_before_main() {
        use super::{ARENA_EAGER_COMMIT, PURGE_DELAY};
        use libmimalloc_sys::mi_option_get;
        if std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MIMALLOC_")) {
            return; // the environment chose other values
        }
        // SAFETY: reading option values.
        let get = |o| unsafe { mi_option_get(o) };
        assert_eq!((get(ARENA_EAGER_COMMIT), get(PURGE_DELAY)), (0, 100));
    }
}
