//! Rewrites the book's generated output regions from the snapshots.
//!
//! `just bless` runs the lesson tests with `INSTA_UPDATE=always` (so the snapshots hold
//! what the lessons print now) and then this program, so snapshots and docs change
//! together. Read the diff before committing: a snapshot is accepted only once read.

use std::process::ExitCode;

use harness::docs::{chapters, display, refresh};

fn main() -> ExitCode {
    let mut failed = false;
    let mut rewritten = 0;
    for path in chapters() {
        let shown = display(&path);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: cannot read {shown}: {e}");
                failed = true;
                continue;
            }
        };
        match refresh(&text) {
            Ok(fresh) if fresh == text => {}
            Ok(fresh) => match std::fs::write(&path, fresh) {
                Ok(()) => {
                    println!("rewrote {shown}");
                    rewritten += 1;
                }
                Err(e) => {
                    eprintln!("error: cannot write {shown}: {e}");
                    failed = true;
                }
            },
            Err(e) => {
                eprintln!("error: {shown}: {e}");
                failed = true;
            }
        }
    }
    if rewritten == 0 && !failed {
        println!("every generated region in docs/src is up to date");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
