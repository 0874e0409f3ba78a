//! The clocks of transfers: when the loop must look next, stall notices, and what is given up
//! (a stalled send or receive, a header that never completes, a body that trickles), and the
//! sends held back for `max_send_rate` going on.

use super::*;

impl Transfers {
    /// When [`Transfers::tick`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let throttled = self.sends.values().filter_map(|s| s.throttled);
        let sends = self.sends.values().map(|s| {
            let stall = if s.told_stall || s.done_writing || s.lines {
                s.last_io + self.wait_of(s)
            } else {
                s.last_io + STALL_NOTICE.min(self.timeout / 2)
            };
            stall.min(s.last_io + self.wait_of(s))
        });
        let recvs = self.recvs.values().map(|r| {
            let start = r.body.as_ref().map_or(r.accepted, |b| b.started);
            (r.last_io + self.timeout).min(start + self.timeout)
        });
        sends.chain(recvs).chain(throttled).min()
    }

    fn wait_of(&self, s: &Send) -> Duration {
        if s.done_writing {
            self.grace
        } else {
            self.timeout
        }
    }

    /// Aborts transfers that stalled longer than the timeout.
    pub fn tick(&mut self, registry: &Registry, now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        // Sends held back for max_send_rate go on.
        let due: Vec<u64> = self
            .sends
            .iter_mut()
            .filter(|(_, s)| s.throttled.is_some_and(|t| t <= now))
            .map(|(id, s)| {
                s.throttled = None;
                s.last_io = now;
                *id
            })
            .collect();
        for id in due {
            self.mark_ready(id);
        }
        // Long before it is given up, a send that stopped moving is said to have.
        let timeout = self.timeout;
        for s in self.sends.values_mut() {
            let idle = now.duration_since(s.last_io);
            if !s.lines && !s.done_writing && !s.told_stall && idle >= STALL_NOTICE.min(timeout / 2)
            {
                s.told_stall = true;
                out.push(Outcome::Stalling {
                    reply: s.reply,
                    line: format!(
                        "{} to {} has not moved for {:.1} s at {}; it is given up after {:.1} s without progress",
                        s.file_name,
                        s.to,
                        idle.as_secs_f64(),
                        progress_of(s.sent, s.size),
                        timeout.as_secs_f64()
                    ),
                });
            }
        }
        let stalled: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, s)| {
                s.throttled.is_none() && now.duration_since(s.last_io) >= self.wait_of(s)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            let s = &self.sends[&id];
            if s.done_writing {
                // Every byte went out; the receiver just never closed. Not our failure.
                let line = self.sent_line(id, now) + " (the receiver did not confirm)";
                out.push(self.succeed_send(id, registry, line));
            } else {
                let why = format!(
                    "stalled for {:?} after {} of {} bytes ({})",
                    self.timeout,
                    s.sent,
                    s.size,
                    progress_of(s.sent, s.size)
                );
                out.push(self.fail_send(id, registry, why));
            }
        }
        let stalled: Vec<u64> = self
            .recvs
            .iter()
            .filter(|(_, r)| now.duration_since(r.last_io) >= self.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            if self.recvs[&id].lines {
                // A peer that keeps its connection open: what it sent so far counts.
                self.close_lines(id, registry, &mut out);
                continue;
            }
            let why = match &self.recvs[&id].body {
                Some(b) => format!(
                    "stalled after {} of {} bytes ({})",
                    b.received,
                    b.size,
                    progress_of(b.received, b.size)
                ),
                None => "no IMG header arrived".into(),
            };
            out.push(self.abort_recv(id, registry, &why));
        }
        // A peer that trickles (a byte a second resets no stall clock here): the header must be
        // whole within the timeout, and a body must average `min_rate` once it ran that long.
        let (timeout, min_rate) = (self.timeout, self.min_rate);
        let slow: Vec<(u64, String)> = self
            .recvs
            .iter()
            .filter_map(|(id, r)| match &r.body {
                None if !r.lines && now.duration_since(r.accepted) >= timeout => {
                    Some((*id, format!("no complete IMG header within {timeout:?}")))
                }
                Some(b) => {
                    let secs = now.duration_since(b.started).as_secs_f64();
                    let rate = b.received as f64 / secs.max(1e-3);
                    (secs >= timeout.as_secs_f64() && rate < min_rate as f64).then(|| {
                        (
                            *id,
                            format!(
                                "too slow: {rate:.0} bytes/s, under min_transfer_rate ({min_rate})"
                            ),
                        )
                    })
                }
                None => None,
            })
            .collect();
        for (id, why) in slow {
            out.push(self.abort_recv(id, registry, &why));
        }
        out
    }
}
