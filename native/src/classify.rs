//! Human or machine: the twin of `verdicts` in
//! `chalicelib/tracking/classify.py` (its docstring is the contract).
//!
//! A verdict is a bit mask of [`REASONS`] (0: nothing against the hit). What
//! the data files and crawlerdetect say about each user agent and address is
//! computed in Python, once per distinct string, and given here as flags;
//! this module applies the rules over one recipient's hits in (ts, hit id)
//! order. Verdicts are i64 because stored ones come back from Python (-1 for
//! a hit stored before classification).

use crate::aggregate::HitSet;
use crate::logs::Kind;

/// The reference's REASONS, in its order: bit i is reason i.
pub const REASONS: [&str; 9] = [
    "apple_proxy",
    "scanner_agent",
    "scanner_address",
    "crawler",
    "prefetch",
    "honeypot",
    "burst",
    "too_fast",
    "no_open",
];
const APPLE_PROXY: i64 = 1 << 0;
const SCANNER_AGENT: i64 = 1 << 1;
const SCANNER_ADDRESS: i64 = 1 << 2;
const CRAWLER: i64 = 1 << 3;
const PREFETCH: i64 = 1 << 4;
const HONEYPOT: i64 = 1 << 5;
const BURST: i64 = 1 << 6;
const TOO_FAST: i64 = 1 << 7;
const NO_OPEN: i64 = 1 << 8;
pub const ALL_RULES: i64 = (1 << REASONS.len()) - 1;
const WEAK: i64 = NO_OPEN;
const STRONG: i64 = ALL_RULES & !WEAK;

pub const AGENT_APPLE_PROXY: i64 = 1;
pub const AGENT_SCANNER: i64 = 2;
pub const AGENT_CRAWLER: i64 = 4;
pub const AGENT_PREFETCH: i64 = 8;
pub const ADDRESS_APPLE: i64 = 1;
pub const ADDRESS_SCANNER: i64 = 2;
pub const HONEYPOT_URL_ID: i64 = 0;
/// A stored hit from before classification: counted in no human or machine counter.
pub const UNCLASSIFIED: i64 = -1;

/// Which reasons apply, and the behaviour thresholds (the reference's `Rules`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub enabled: i64,
    pub burst_links: i64,
    pub burst_window_ms: i64,
    pub min_click_after_send_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            enabled: ALL_RULES,
            burst_links: 2,
            burst_window_ms: 2_000,
            min_click_after_send_ms: 5_000,
        }
    }
}

/// A strong reason, or two weak ones (a negative verdict is neither: check it first).
pub fn is_machine(verdict: i64) -> bool {
    verdict & STRONG != 0 || (verdict & WEAK).count_ones() >= 2
}

/// Counted as a person: classified, and not machine.
pub fn is_human(verdict: i64) -> bool {
    verdict >= 0 && !is_machine(verdict)
}

/// What the aggregation needs to classify beyond the hits.
pub trait Context {
    fn rules(&self) -> Rules;
    /// The flags of the hit's user agent and of its address.
    fn agent(&self, hit: u32) -> i64;
    fn address(&self, hit: u32) -> i64;
    /// The send time of the recipient of group `group`, when known.
    fn sent_at(&self, group: usize) -> Option<i64>;
    /// The verdict a stored hit was stored with, when known.
    fn stored(&self, hit: u32) -> Option<i64>;
}

/// No flags, no send times, nothing stored, the default rules: `process_log`'s.
pub struct DefaultContext;

impl Context for DefaultContext {
    fn rules(&self) -> Rules {
        Rules::default()
    }
    fn agent(&self, _: u32) -> i64 {
        0
    }
    fn address(&self, _: u32) -> i64 {
        0
    }
    fn sent_at(&self, _: usize) -> Option<i64> {
        None
    }
    fn stored(&self, _: u32) -> Option<i64> {
        None
    }
}

/// Each hit's verdict, for one recipient's hits in (ts, hit id) order, into
/// `out` (cleared first); `clicks` is scratch space. From position
/// `opened_from` on, the recipient had opened in a hit no longer stored (the
/// reference's `opened_after`; usize::MAX: no such open).
// Allowed: the reference's parameters, plus two scratch buffers the caller reuses.
#[allow(clippy::too_many_arguments)]
pub fn verdicts<H: HitSet, C: Context + ?Sized>(
    hits: &H,
    ordered: &[u32],
    context: &C,
    sent_at: Option<i64>,
    opened_from: usize,
    out: &mut Vec<i64>,
    clicks: &mut Vec<usize>,
) {
    let rules = context.rules();
    out.clear();
    clicks.clear();
    let too_fast = if rules.min_click_after_send_ms > 0 {
        sent_at
    } else {
        None
    };
    let mut opened = false;
    for (position, &hit) in ordered.iter().enumerate() {
        opened |= position >= opened_from;
        let agent = context.agent(hit);
        let address = context.address(hit);
        let mut mask = 0;
        if agent & AGENT_SCANNER != 0 {
            mask |= SCANNER_AGENT;
        }
        if address & ADDRESS_SCANNER != 0 {
            mask |= SCANNER_ADDRESS;
        }
        if agent & AGENT_CRAWLER != 0 {
            mask |= CRAWLER;
        }
        if hits.purpose_declared(hit) {
            mask |= PREFETCH; // the client said it fetched ahead (Sec-Purpose, Purpose, X-Purpose, X-Moz)
        }
        match hits.kind(hit) {
            Some(Kind::Open) => {
                if agent & AGENT_APPLE_PROXY != 0 || address & ADDRESS_APPLE != 0 {
                    mask |= APPLE_PROXY;
                }
                opened = true;
            }
            Some(Kind::Click) => {
                clicks.push(position);
                if agent & AGENT_APPLE_PROXY != 0 {
                    mask |= SCANNER_AGENT; // no browser sends the bare agent
                }
                if agent & AGENT_PREFETCH != 0 {
                    mask |= PREFETCH;
                }
                if hits.url_id(hit) == HONEYPOT_URL_ID {
                    mask |= HONEYPOT;
                }
                if let Some(sent) = too_fast {
                    if i128::from(hits.ts(hit)) - i128::from(sent) < i128::from(rules.min_click_after_send_ms) {
                        mask |= TOO_FAST;
                    }
                }
                if !opened {
                    mask |= NO_OPEN;
                }
            }
            _ => {}
        }
        out.push(mask);
    }
    if rules.burst_links >= 2 {
        let mut urls: Vec<i64> = Vec::new();
        for start in 0..clicks.len() {
            let first = i128::from(hits.ts(ordered[clicks[start]]));
            urls.clear();
            let mut end = start;
            while end < clicks.len()
                && i128::from(hits.ts(ordered[clicks[end]])) - first <= i128::from(rules.burst_window_ms)
            {
                let url = hits.url_id(ordered[clicks[end]]);
                if !urls.contains(&url) {
                    urls.push(url);
                }
                end += 1;
            }
            if urls.len() as i128 >= i128::from(rules.burst_links) {
                for &position in &clicks[start..end] {
                    out[position] |= BURST;
                }
            }
        }
    }
    for mask in out.iter_mut() {
        *mask &= rules.enabled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_needs_a_strong_reason_or_two_weak_ones() {
        assert!(!is_machine(NO_OPEN));
        assert!(is_machine(BURST | NO_OPEN));
        assert!(is_human(0) && is_human(NO_OPEN) && !is_human(-1) && !is_human(APPLE_PROXY));
        assert_eq!(STRONG | WEAK, ALL_RULES);
    }
}
