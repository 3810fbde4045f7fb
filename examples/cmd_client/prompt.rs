//! The interactive prompt (the lesson's `input('please enter your cmd')`
//! loop), with line editing and history; `exit`, `quit`, Ctrl-D or Ctrl-C
//! leave. It connects at the first command and again whenever the server
//! closed the connection (a refusal, its idle timeout, a restart).

use std::io;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::conn::Conn;
use super::{CLIENT_FAILURE, Cli, run_and_print};

/// Runs the prompt; returns the last command's status.
pub fn interactive(cli: &Cli, token: Option<&str>) -> io::Result<i32> {
    let mut editor = DefaultEditor::new().map_err(io::Error::other)?;
    let prompt = format!(
        "{}> ",
        cli.unix
            .as_ref()
            .map_or(cli.addr.clone(), |p| p.display().to_string())
    );
    let mut conn: Option<Conn> = None;
    let mut last = 0;
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => return Ok(last),
            Err(e) => return Err(io::Error::other(e)),
        };
        let cmd = line.trim();
        if cmd.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(cmd);
        if cmd == "exit" || cmd == "quit" {
            return Ok(last);
        }
        if conn.as_mut().is_some_and(Conn::closed) {
            conn = None; // the server closed it while we waited at the prompt
        }
        let result = match &mut conn {
            Some(c) => Ok(c),
            None => Conn::open(cli).map(|c| conn.insert(c)),
        }
        .and_then(|c| run_and_print(c, cmd, cli, token));
        last = match result {
            Ok(code) if code != 0 => {
                eprintln!("[exit {code}]");
                code
            }
            Ok(code) => code,
            Err(e) => {
                eprintln!("cmd_client: {e}");
                conn = None; // the server closes the connection after an error
                i32::from(CLIENT_FAILURE)
            }
        };
    }
}
