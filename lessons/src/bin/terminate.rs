//! Stopping a child: a long-running child is terminated by its parent (SIGTERM, so
//! its exit code is -15), then joined and closed. Ctrl-C during the wait takes the
//! same path, as the article's `except KeyboardInterrupt` does.
//!
//! Source: `003_72388b9411e63b21.txt` 错误处理. Run it with `just lesson terminate`
//! (add `--real-time` to have five seconds to press Ctrl-C).

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use lessons::{Event, scaled, secs, sleep};
use mpcore::Process;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

// ANCHOR: main
/// The child: says it is there, then works for a minute (scaled), unless stopped.
fn test(started: Event) {
    println!("子进程");
    started.set().expect("tell the parent");
    for _ in 0..60 {
        sleep(1.0);
    }
}

fn main() -> mpcore::Result<()> {
    mpcore::init();
    let started = Event::new()?;
    let mut process = Process::new(test, (started.clone(),));
    println!("父进程");
    process.start()?;
    started.wait()?; // the child's line is out

    let ctrl_c = CtrlC::catch()?; // from here on, Ctrl-C is a message to this process
    println!("exitcode while it runs: {}", or_none(process.exitcode()));
    let patience = scaled(5.0);
    if ctrl_c.wait_timeout(patience)? {
        println!("Received KeyboardInterrupt, terminating the process...");
    } else {
        println!(
            "no Ctrl-C for {}, terminating the process...",
            secs(patience)
        );
    }
    process.terminate()?; // SIGTERM: the child stops wherever it is
    process.join()?; // and is reaped
    println!("exitcode after terminate: {}", or_none(process.exitcode()));
    process.close()?; // only after join: a closed process cannot be joined
    println!("所有子进程退出");
    Ok(())
}
// ANCHOR_END: main

/// An exit code as Python prints `process.exitcode`: the number, or `None` while the
/// process runs.
fn or_none(code: Option<i32>) -> String {
    code.map_or_else(|| "None".to_string(), |code| code.to_string())
}

/// Ctrl-C (SIGINT) as something to wait for, instead of the end of the program.
///
/// SIGINT is blocked in this thread, so the kernel keeps it pending instead of
/// killing the process, and a `signalfd` turns it into a readable descriptor. No
/// signal handler runs, so no unsafe code is needed. (The lessons have no other
/// threads; a thread that does not block SIGINT would still die of it.)
struct CtrlC(SignalFd);

impl CtrlC {
    /// Starts catching Ctrl-C in this thread.
    fn catch() -> io::Result<CtrlC> {
        let mut sigint = SigSet::empty();
        sigint.add(Signal::SIGINT);
        sigint.thread_block()?;
        Ok(CtrlC(SignalFd::with_flags(&sigint, SfdFlags::SFD_CLOEXEC)?))
    }

    /// Waits up to `timeout` for Ctrl-C; whether it came.
    fn wait_timeout(&self, timeout: Duration) -> io::Result<bool> {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(self.0.read_signal()?.is_some()),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}
