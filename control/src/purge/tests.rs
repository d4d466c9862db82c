#![allow(clippy::unwrap_used)]
use super::*;

fn purge(tag: &str) -> Purge {
    Purge { tags: vec![tag.into()], ..Default::default() }
}

fn at(log: &str, applied: u64) -> Cursor {
    Cursor { log: log.into(), applied }
}

fn snapshot(uid: &str, data: &BTreeMap<String, String>, head: u64) -> Snapshot {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            uid: Some(uid.into()),
            annotations: Some(BTreeMap::from([(HEAD.to_owned(), head.to_string())])),
            ..Default::default()
        },
        data: Some(data.clone()),
        ..Default::default()
    };
    Snapshot::of(&cm)
}

#[test]
fn the_log_numbers_purges_in_order_and_keeps_the_newest_within_its_bounds() {
    let mut data = BTreeMap::new();
    let mut head = 0;
    for i in 0..(MAX_ENTRIES + 5) {
        head = append_to(&mut data, head, purge(&format!("t{i}")), 7, MAX_ENTRIES).seq;
    }
    assert_eq!(head, MAX_ENTRIES as u64 + 5);
    assert_eq!(data.len(), MAX_ENTRIES);
    let s = snapshot("L", &data, head);
    assert_eq!((s.head, s.entries.keys().next().copied()), (head, Some(6)));
    assert_eq!(s.entries[&head].purge, purge(&format!("t{}", MAX_ENTRIES + 4)));
    // Bytes bound: big purges push the old ones out sooner; one entry always stays.
    let big = Purge { tags: (0..900).map(|i| format!("{i:0>250}")).collect(), ..Default::default() };
    let mut data = BTreeMap::new();
    let mut head = 0;
    for _ in 0..5 {
        head = append_to(&mut data, head, big.clone(), 7, MAX_ENTRIES).seq;
    }
    assert!(data.len() < 5 && !data.is_empty(), "{} entries", data.len());
    assert!(
        data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            <= MAX_BYTES.max(data.values().next().unwrap().len() + 10)
    );
}

#[test]
fn an_edge_gets_what_it_missed_or_is_told_it_missed_too_much() {
    let mut data = BTreeMap::new();
    let mut head = 0;
    for i in 0..5 {
        head = append_to(&mut data, head, purge(&format!("t{i}")), 7, MAX_ENTRIES).seq;
    }
    data.remove(&key(1));
    data.remove(&key(2));
    let s = snapshot("L", &data, head);
    let seqs = |f: Feed| (f.gap, f.purges.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(seqs(s.feed(None)), (false, vec![3, 4, 5]), "a new edge gets every purge held");
    assert_eq!(seqs(s.feed(Some(&at("L", 2)))), (false, vec![3, 4, 5]), "missed 3 to 5, all held");
    assert_eq!(seqs(s.feed(Some(&at("L", 4)))), (false, vec![5]));
    assert_eq!(seqs(s.feed(Some(&at("L", 5)))), (false, vec![]), "up to date");
    assert_eq!(seqs(s.feed(Some(&at("L", 1)))), (true, vec![]), "missed 2, which the log no longer holds");
    assert_eq!(seqs(s.feed(Some(&at("M", 5)))), (true, vec![]), "another log");
    assert_eq!(seqs(s.feed(Some(&at("L", 9)))), (false, vec![]), "ahead: this replica lags; nothing to send");
    assert!(s.is_behind(&at("L", 9)) && !s.is_behind(&at("L", 5)) && !s.is_behind(&at("M", 9)));
    assert_eq!(seqs(s.feed(Some(&at("", 0)))), (true, vec![]), "followed no log, but 1 and 2 are gone");
    let full = snapshot("L", &BTreeMap::from([(key(1), data[&key(3)].replace("\"seq\":3", "\"seq\":1"))]), 1);
    assert_eq!(seqs(full.feed(Some(&at("", 0)))), (false, vec![1]), "followed no log: this one from its start");
    let empty = Snapshot { loaded: true, ..Default::default() };
    assert_eq!(seqs(empty.feed(Some(&at("", 0)))), (false, vec![]));
}
