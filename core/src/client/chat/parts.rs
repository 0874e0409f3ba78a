//! Long texts arrive in numbered parts (`(1/3) ...`, see `codec::split_text`); this puts them
//! back together per sender. Bounded: at most `MAX_SETS` texts in progress, each for at most
//! `WAIT` — what is not complete by then is shown as it came, so nothing is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codec::Handle;

/// Texts being put together at once.
const MAX_SETS: usize = 64;
/// How long the rest of a text is waited for.
pub const WAIT: Duration = Duration::from_secs(10);

struct Partial {
    got: Vec<Option<String>>,
    since: Instant,
}

impl Partial {
    /// The parts that came, as they came (with their prefixes).
    fn into_parts_as_sent(self) -> Vec<String> {
        let n = self.got.len();
        self.got
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| format!("({}/{n}) {p}", i + 1)))
            .collect()
    }
}

/// The texts in progress, by sender.
#[derive(Default)]
pub struct Parts {
    sets: HashMap<Handle, Partial>,
}

/// What a part led to.
pub enum Took {
    /// The whole text, now complete.
    Whole(String),
    /// Kept; more to come.
    Kept,
}

impl Parts {
    /// Takes part `k` of `n` from `from`; `flushed` gets the parts of a text that will not be
    /// completed (another text began, or too many are in progress), to show as they came.
    pub fn add(
        &mut self,
        now: Instant,
        from: &Handle,
        k: usize,
        n: usize,
        rest: &str,
        flushed: &mut Vec<(Handle, String)>,
    ) -> Took {
        let restart = self
            .sets
            .get(from)
            .is_some_and(|p| p.got.len() != n || p.got[k - 1].is_some());
        if restart && let Some(old) = self.sets.remove(from) {
            flushed.extend(
                old.into_parts_as_sent()
                    .into_iter()
                    .map(|t| (from.clone(), t)),
            );
        }
        if !self.sets.contains_key(from) && self.sets.len() >= MAX_SETS {
            let oldest = self
                .sets
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(h, _)| h.clone());
            if let Some(h) = oldest
                && let Some(old) = self.sets.remove(&h)
            {
                flushed.extend(old.into_parts_as_sent().into_iter().map(|t| (h.clone(), t)));
            }
        }
        let set = self.sets.entry(from.clone()).or_insert_with(|| Partial {
            got: vec![None; n],
            since: now,
        });
        set.got[k - 1] = Some(rest.to_owned());
        if set.got.iter().all(Option::is_some) {
            let set = self.sets.remove(from).expect("set");
            return Took::Whole(set.got.into_iter().flatten().collect());
        }
        Took::Kept
    }

    /// The parts of texts not completed within [`WAIT`], to show as they came.
    pub fn expired(&mut self, now: Instant) -> Vec<(Handle, String)> {
        let old: Vec<Handle> = self
            .sets
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= WAIT)
            .map(|(h, _)| h.clone())
            .collect();
        let mut out = Vec::new();
        for h in old {
            if let Some(p) = self.sets.remove(&h) {
                out.extend(p.into_parts_as_sent().into_iter().map(|t| (h.clone(), t)));
            }
        }
        out
    }

    /// When the oldest text in progress runs out of time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sets.values().map(|p| p.since + WAIT).min()
    }
}
