//! `[sources.NAME] type = "file"` settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TailError;

/// Where to start in a file that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From its first byte (the default: nothing is skipped).
    #[default]
    Beginning,
    /// From the end of its last complete line, for files present at start
    /// that have no checkpoint. Files that appear later (a new file after a
    /// rotation) are always read from the beginning, or their first lines
    /// would be lost.
    End,
}

/// Settings of a tailing file source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// Glob patterns of the files to read (`/var/log/mlflow/**/*.log`).
    /// `**` crosses directories, `*` does not. Each pattern's directories
    /// are walked from its part before the first wildcard.
    pub include: Vec<String>,
    /// Glob patterns of files not to read, matched against the same paths.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// How often the include patterns are walked again for new, renamed
    /// and removed files.
    #[serde(default = "default_glob_interval", with = "humantime_serde")]
    pub glob_interval: Duration,
    /// How long the reader sleeps when no file had new data.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Longest line kept whole; a longer line becomes one record holding
    /// its head with `overflow_len` set (the normalizer dead-letters it).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How many leading bytes identify a file (its fingerprint). See the
    /// module docs for files shorter than that.
    #[serde(default = "default_fingerprint_bytes")]
    pub fingerprint_bytes: usize,
    /// Files not modified for this long are not opened (and open files
    /// idle this long are closed). Their checkpoints are kept as long as
    /// the files exist; a file modified again is resumed.
    #[serde(default, with = "humantime_serde")]
    pub ignore_older: Option<Duration>,
    /// Most bytes read from one file before the reader moves on to the
    /// next (round robin), so one busy file cannot starve the others.
    #[serde(default = "default_max_read_bytes")]
    pub max_read_bytes: usize,
    /// Most records in one batch.
    #[serde(default = "default_batch_max_records")]
    pub batch_max_records: usize,
    /// Format of every file of this source (`Source.format`), bypassing
    /// format detection.
    #[serde(default)]
    pub format: Option<String>,
    /// How long a file that was deleted or renamed out of the include
    /// patterns is still read after it last grew (the writer may not have
    /// reopened its log yet). After that its unfinished last line, if any,
    /// is handed out and the file is closed.
    #[serde(default = "default_rotate_wait", with = "humantime_serde")]
    pub rotate_wait: Duration,
    /// How long the checkpoint of a file that disappeared is kept (it
    /// resumes the file if it comes back, e.g. moved while mlsoc was
    /// stopped). Checkpoints of files that exist never expire.
    #[serde(default = "default_checkpoint_retention", with = "humantime_serde")]
    pub checkpoint_retention: Duration,
    /// At shutdown, how long to wait for the acknowledgement of batches
    /// still in the pipeline before the last checkpoint is written
    /// (unacknowledged batches are read again after a restart).
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Read the files there are to their end, then stop (the source ends
    /// once nothing new was read across three scans in a row). For batch
    /// runs over existing logs: `mlsoc run` exits when every record is
    /// delivered. Checkpoints are kept as usual, so a later run resumes.
    #[serde(default)]
    pub stop_at_eof: bool,
}

fn default_glob_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_max_line_bytes() -> usize {
    1 << 20
}
fn default_fingerprint_bytes() -> usize {
    1024
}
fn default_max_read_bytes() -> usize {
    // Measured with scripts/bench-run.sh: 1 MiB reads made the daemon
    // slower (4.2 s against 3.4 s for a million events without detection)
    // and tripled its memory (376 against 136 MiB): records are slices of
    // the read buffers, which stay alive while any record is in flight.
    64 * 1024
}
fn default_batch_max_records() -> usize {
    1000
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_checkpoint_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TailConfig {
    /// Settings with every default and these include patterns.
    pub fn new<S: Into<String>>(include: impl IntoIterator<Item = S>) -> TailConfig {
        TailConfig {
            include: include.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            glob_interval: default_glob_interval(),
            poll_interval: default_poll_interval(),
            max_line_bytes: default_max_line_bytes(),
            fingerprint_bytes: default_fingerprint_bytes(),
            ignore_older: None,
            max_read_bytes: default_max_read_bytes(),
            batch_max_records: default_batch_max_records(),
            format: None,
            rotate_wait: default_rotate_wait(),
            checkpoint_retention: default_checkpoint_retention(),
            shutdown_timeout: default_shutdown_timeout(),
            stop_at_eof: false,
        }
    }

    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), TailError> {
        let bad = |m: &str| Err(TailError::Config(m.to_string()));
        if self.include.is_empty() {
            return bad("include must name at least one pattern");
        }
        if self.max_line_bytes == 0 {
            return bad("max_line_bytes must be at least 1");
        }
        if !(1..=1 << 20).contains(&self.fingerprint_bytes) {
            return bad("fingerprint_bytes must be between 1 and 1048576");
        }
        if self.max_read_bytes == 0 {
            return bad("max_read_bytes must be at least 1");
        }
        if self.batch_max_records == 0 {
            return bad("batch_max_records must be at least 1");
        }
        if self.glob_interval.is_zero() || self.poll_interval.is_zero() {
            return bad("glob_interval and poll_interval must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
    enum SourceConfig {
        File(TailConfig),
    }

    #[test]
    fn toml_with_defaults_and_durations() {
        let c: SourceConfig = toml::from_str(
            r#"
            type = "file"
            include = ["/var/log/mlflow/**/*.log"]
            exclude = ["**/*.gz"]
            read_from = "end"
            glob_interval = "2s"
            ignore_older = "1day"
            format = "mlflow.access"
            "#,
        )
        .unwrap();
        let SourceConfig::File(c) = c;
        assert_eq!(c.read_from, ReadFrom::End);
        assert_eq!(c.glob_interval, Duration::from_secs(2));
        assert_eq!(c.poll_interval, Duration::from_millis(250));
        assert_eq!(c.ignore_older, Some(Duration::from_secs(86400)));
        assert_eq!(c.max_line_bytes, 1 << 20);
        assert_eq!(c.fingerprint_bytes, 1024);
        assert_eq!(c.format.as_deref(), Some("mlflow.access"));
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        let e = toml::from_str::<SourceConfig>(
            "type = \"file\"\ninclude = [\"a\"]\nread_form = \"end\"\n",
        );
        assert!(e.is_err());
        let mut c = TailConfig::new(["a.log"]);
        c.batch_max_records = 0;
        assert!(c.validate().is_err());
        assert!(TailConfig::new(Vec::<String>::new()).validate().is_err());
    }
}
