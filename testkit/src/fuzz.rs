//! Property tests over bad input (issue 32): a time bound on each call of a parser ([`within`]), arbitrary bytes
//! ([`bytes`]) and valid examples with a few bytes or lines inserted, removed or replaced ([`mutated`]), which get
//! past a format's first checks into the code behind them.
//!
//! The routes crate has the same helpers in its own fuzz set (`routes/src/tests/fuzz.rs`): it does not depend on
//! the test kit.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// How long one parser call may take on one input, in a debug build on a busy machine.
pub const LIMIT: Duration = Duration::from_secs(2);

/// Cases per property: 512, so that each runs in a few seconds in a debug build; `PROPTEST_CASES` sets more for a
/// longer run. A hang costs [`LIMIT`] per shrink step and leaves its thread spinning until the run ends, hence the
/// few shrink steps.
pub fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 512 };
    ProptestConfig { cases, max_shrink_iters: 64, ..default }
}

/// Runs `f` on its own thread (with the default stack, as the edge's workers have) and fails, naming `input`
/// (escaped), if it panics or has not returned within [`LIMIT`]. A call that never returns leaves its thread
/// spinning until the test binary exits.
pub fn within<T: Send + 'static>(input: &[u8], f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    let input = String::from_utf8_lossy(input);
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("panicked ({message}) on input {input:?}")
        }
        Err(_) => panic!("did not return within {LIMIT:?} on input {input:?}"),
    }
}

/// Up to 4 KiB of arbitrary bytes.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..4096)
}

/// Up to 4 KiB of arbitrary bytes, read as text is read (invalid UTF-8 replaced).
pub fn text() -> impl Strategy<Value = String> {
    bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// One of `seeds` with one edit (half the cases) or up to six, some of which insert one of `pieces` (what means
/// something to the format).
pub fn mutated(seeds: &'static [&'static str], pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop_oneof![vec(edit(pieces), 1..2), vec(edit(pieces), 2..7)];
    (select(seeds), edits).prop_map(|(seed, edits)| apply(seed, &edits))
}

/// One change to a valid example.
#[derive(Debug, Clone)]
enum Edit {
    InsertBytes(Index, Vec<u8>),
    InsertPiece(Index, &'static str),
    Remove(Index, usize),
    Replace(Index, u8),
    /// Copies of a line (the first index), up to 64, before another (the second).
    CopyLine(Index, Index, usize),
    RemoveLine(Index),
}

fn edit(pieces: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Edit::InsertBytes(at, b)),
        3 => (any::<Index>(), select(pieces)).prop_map(|(at, p)| Edit::InsertPiece(at, p)),
        1 => (any::<Index>(), 1usize..24).prop_map(|(at, n)| Edit::Remove(at, n)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        1 => (any::<Index>(), any::<Index>(), prop_oneof![3 => Just(1usize), 1 => 2usize..65])
            .prop_map(|(from, to, n)| Edit::CopyLine(from, to, n)),
        1 => any::<Index>().prop_map(Edit::RemoveLine),
    ]
}

/// Where line `n` starts, and where it ends after its `\n` (or at the end).
fn line_span(text: &[u8], n: &Index) -> (usize, usize) {
    let breaks = text.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1);
    let starts: Vec<usize> = std::iter::once(0).chain(breaks).collect();
    let start = starts[n.index(starts.len())];
    let end = text[start..].iter().position(|b| *b == b'\n').map_or(text.len(), |i| start + i + 1);
    (start, end)
}

fn apply(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut text = seed.as_bytes().to_vec();
    for e in edits {
        let place = |at: &Index, text: &Vec<u8>| at.index(text.len() + 1);
        match e {
            Edit::InsertBytes(at, bytes) => {
                let at = place(at, &text);
                text.splice(at..at, bytes.iter().copied());
            }
            Edit::InsertPiece(at, piece) => {
                let at = place(at, &text);
                text.splice(at..at, piece.bytes());
            }
            Edit::Remove(at, n) => {
                let at = place(at, &text);
                text.drain(at..(at + n).min(text.len()));
            }
            Edit::Replace(at, byte) => {
                if !text.is_empty() {
                    let at = at.index(text.len());
                    text[at] = *byte;
                }
            }
            Edit::CopyLine(from, to, n) => {
                let (start, end) = line_span(&text, from);
                let line = text[start..end].repeat(*n);
                let (to, _) = line_span(&text, to);
                text.splice(to..to, line);
            }
            Edit::RemoveLine(n) => {
                let (start, end) = line_span(&text, n);
                text.drain(start..end);
            }
        }
    }
    text
}
