//! Disk quotas for received files: bytes accepted per sender and in all over the last hour,
//! kept in one-minute buckets (bounded: 60 buckets per sender, and only known peers send).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The window quotas count over, in minutes.
pub const WINDOW_MINUTES: u64 = 60;

/// Bytes accepted per sender and in all, per minute of the last hour.
pub struct Quota {
    sender: u64,
    total: u64,
    origin: Instant,
    by_sender: HashMap<String, VecDeque<(u64, u64)>>,
    all: VecDeque<(u64, u64)>,
}

fn add(q: &mut VecDeque<(u64, u64)>, minute: u64, bytes: i128) {
    while q.front().is_some_and(|(m, _)| minute >= m + WINDOW_MINUTES) {
        q.pop_front();
    }
    match q.back_mut() {
        Some((m, b)) if *m == minute => *b = (*b as i128 + bytes).max(0) as u64,
        _ if bytes > 0 => q.push_back((minute, bytes as u64)),
        _ => {}
    }
}

fn sum(q: &VecDeque<(u64, u64)>, minute: u64) -> u64 {
    q.iter()
        .filter(|(m, _)| minute < m + WINDOW_MINUTES)
        .map(|(_, b)| b)
        .sum()
}

impl Quota {
    /// At most `sender` bytes from one sender and `total` from everyone, per hour.
    pub fn new(sender: u64, total: u64) -> Quota {
        Quota {
            sender,
            total,
            origin: Instant::now(),
            by_sender: HashMap::new(),
            all: VecDeque::new(),
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / 60
    }

    /// Reserves `size` bytes for `from`; the error says which quota it would pass.
    pub fn charge(&mut self, from: &str, size: u64, now: Instant) -> Result<(), String> {
        let m = self.minute(now);
        let used = self.by_sender.get(from).map_or(0, |q| sum(q, m));
        if used.saturating_add(size) > self.sender {
            return Err(format!(
                "{from} sent {used} bytes in the last hour; {size} more would pass quota_per_sender ({} bytes)",
                self.sender
            ));
        }
        let all = sum(&self.all, m);
        if all.saturating_add(size) > self.total {
            return Err(format!(
                "{all} bytes were received in the last hour; {size} more would pass quota_total ({} bytes)",
                self.total
            ));
        }
        add(
            self.by_sender.entry(from.to_owned()).or_default(),
            m,
            size as i128,
        );
        add(&mut self.all, m, size as i128);
        Ok(())
    }

    /// Gives back a reservation whose transfer did not complete.
    pub fn refund(&mut self, from: &str, size: u64, now: Instant) {
        let m = self.minute(now);
        if let Some(q) = self.by_sender.get_mut(from) {
            add(q, m, -(size as i128));
        }
        add(&mut self.all, m, -(size as i128));
        self.by_sender.retain(|_, q| !q.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn per_sender_and_total_within_the_hour() {
        let t = Instant::now();
        let mut q = Quota::new(100, 150);
        assert!(q.charge("bob", 60, t).is_ok());
        let e = q.charge("bob", 50, t).unwrap_err();
        assert!(e.contains("quota_per_sender"), "{e}");
        assert!(
            q.charge("carol", 100, t)
                .unwrap_err()
                .contains("quota_total")
        );
        q.refund("bob", 60, t);
        assert!(q.charge("carol", 100, t).is_ok());
        // An hour later it is all forgotten.
        let later = t + Duration::from_secs(3601);
        assert!(q.charge("carol", 100, later).is_ok());
        assert!(q.charge("bob", 50, later).is_ok());
    }
}
