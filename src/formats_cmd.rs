//! `mlsoc formats`: the formats mlsoc reads, each with a sample line.

use std::io::Write;
use std::process::ExitCode;

use crate::{FormatsArgs, load_registry};

pub fn run(args: FormatsArgs) -> anyhow::Result<ExitCode> {
    let reg = load_registry(&args.formats)?;
    let mut formats: Vec<&normalizer::Format> = reg.formats().iter().collect();
    formats.sort_by(|a, b| a.name.cmp(&b.name));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let list: Vec<serde_json::Value> = formats
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "dataset": &*f.dataset,
                    "component": f.component.as_deref(),
                    "description": f.description,
                    "example": f.example,
                    "detected_automatically": f.auto,
                    "builtin": f.builtin,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for f in &formats {
        let origin = if f.builtin {
            ""
        } else {
            " (from a formats file)"
        };
        let auto = if f.auto { "" } else { " (only with --format)" };
        writeln!(out, "{}  dataset={}{}{}", f.name, f.dataset, origin, auto)?;
        writeln!(out, "    {}", f.description)?;
        if let Some(ex) = &f.example {
            writeln!(out, "    e.g. {}", escape_for_terminal(ex))?;
        }
        writeln!(out)?;
    }
    if args.steps {
        writeln!(
            out,
            "Enrichment steps (for `enrich` in format definitions):"
        )?;
        for (name, doc) in normalizer::steps::GENERIC_STEPS {
            writeln!(out, "  {name}\n      {doc}")?;
        }
        for s in normalizer::formats::STEPS {
            writeln!(out, "  {}\n      {}", s.name, s.doc)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Control characters shown as escapes, so a sample cannot drive the terminal.
pub fn escape_for_terminal(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c == '\t' {
                "\\t".chars().collect::<Vec<_>>()
            } else if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            }
        })
        .collect()
}
