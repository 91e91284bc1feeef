//! Waiting for descriptors to become readable (`poll(2)`).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Waits until at least one of `fds` is readable (or hung up), or `timeout` passes.
///
/// Returns one flag per descriptor, in order. `None` waits forever. Interrupted
/// waits (`EINTR`) resume with the time that is left.
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    // A timeout too large to add to the clock (`Duration::MAX`) means no timeout.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // SAFETY: the caller passes descriptors it keeps open for the duration of
        // this call; poll only reads their numbers.
        let borrowed: Vec<BorrowedFd<'_>> = fds
            .iter()
            .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
            .collect();
        let mut pollfds: Vec<PollFd<'_>> = borrowed
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        let left = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up so that a wait of 0.5 ms does not become a busy poll.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut pollfds, left) {
            Ok(_) => {
                return Ok(pollfds
                    .iter()
                    .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .collect());
            }
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_huge_timeout_means_no_timeout_not_a_panic() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"x").unwrap();
        let ready = wait_readable(&[r.as_raw_fd()], Some(Duration::MAX)).unwrap();
        assert_eq!(ready, vec![true]);
    }

    #[test]
    fn a_zero_timeout_returns_at_once() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert_eq!(
            wait_readable(&[r.as_raw_fd()], Some(Duration::ZERO)).unwrap(),
            vec![false]
        );
    }
}
