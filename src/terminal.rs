//! Secrets typed on a terminal: read with the terminal's echo off, so that a password is neither
//! shown while it is typed nor left on the screen or in the terminal's scrollback.

use std::io::{self, BufRead, Write as _};
use std::mem::MaybeUninit;

/// Standard input's terminal with its echo off, until this is dropped.
pub struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    /// Turns the echo off when standard input is a terminal; `None` otherwise (a pipe or a file,
    /// which echo nothing anyway). The Enter that ends the line is still echoed (`ECHONL`), so
    /// the cursor moves on. Input typed ahead is kept (`TCSANOW`, not `TCSAFLUSH`).
    pub fn on_stdin() -> Option<EchoOff> {
        let mut saved = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a whole termios into `saved` when it returns 0; it fails with
        // ENOTTY, writing nothing, when standard input is not a terminal.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, saved.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: `quiet` is a termios that tcgetattr filled, with two flags changed.
        let set = unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) };
        (set == 0).then_some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: puts back the termios that tcgetattr returned.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// Prints `prompt` and reads one line of `input` with the terminal's echo off (when standard
/// input is one); `None` when the input has ended.
pub fn read_secret(prompt: &str, input: &mut dyn BufRead) -> io::Result<Option<String>> {
    let _echo_off = EchoOff::on_stdin();
    eprint!("{prompt}");
    io::stderr().flush()?;
    read_line(input)
}

/// One line of `input` without its line ending; `None` when the input has ended.
pub fn read_line(input: &mut dyn BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}
