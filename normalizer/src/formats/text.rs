//! Plain text and shell history. Definitions in `text.toml`.

use schema::f;

use super::util::get;
use crate::steps::NamedStep;

pub static SHELL_HISTORY: NamedStep = NamedStep {
    name: "shell_history",
    doc: "Shell history line: process.command_line and process.name",
    paths: &[],
    run: |ctx| {
        let Some(cmd) = get(&ctx.event, f::MESSAGE) else { return Ok(()) };
        let cmd_trim = cmd.trim();
        if cmd_trim.is_empty() {
            return Ok(());
        }
        ctx.event.set(f::PROCESS_COMMAND_LINE, cmd.slice_ref(cmd_trim));
        if let Some(first) = cmd_trim.split_whitespace().next() {
            let name = first.rsplit('/').next().unwrap_or(first);
            if !name.is_empty() {
                ctx.event.set(f::PROCESS_NAME, cmd.slice_ref(name));
            }
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn history_and_text() {
        let e = parse("shell.history", "/usr/bin/curl -s http://203.0.113.7/x.sh").unwrap();
        assert_eq!(text(&e, "process.name"), "curl");
        assert_eq!(text(&e, "process.command_line"), "/usr/bin/curl -s http://203.0.113.7/x.sh");
        let e = parse("text", "anything at all").unwrap();
        assert_eq!(text(&e, "message"), "anything at all");
        assert_eq!(text(&e, "event.dataset"), "generic");
    }
}
