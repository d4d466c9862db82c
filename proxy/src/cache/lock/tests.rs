use super::*;

fn key() -> CacheKey {
    CacheKey::new("h\n/seg.ts", "")
}

#[tokio::test]
async fn second_request_waits_for_the_first() {
    let lock = FillLock::new(Duration::from_secs(10));
    let Locked::Write(permit) = lock.lock(&key(), false) else { panic!("first is the writer") };
    let Locked::Read(reader) = lock.lock(&key(), false) else { panic!("second waits") };
    assert!(reader.locked());
    lock.release(&key(), permit, LockStatus::Done);
    reader.wait().await;
    assert_eq!(reader.lock_status(), LockStatus::Done);
}

#[tokio::test(start_paused = true)]
async fn a_request_just_after_a_successful_fill_reads_instead_of_fetching_again() {
    let lock = FillLock::new(Duration::from_secs(10));
    let Locked::Write(permit) = lock.lock(&key(), false) else { panic!() };
    lock.release(&key(), permit, LockStatus::Done);
    let Locked::Read(late) = lock.lock(&key(), false) else { panic!("a late request must not become a writer") };
    assert!(!late.locked(), "its wait returns at once");
    tokio::time::sleep(LINGER * 2).await;
    let Locked::Write(mut again) = lock.lock(&key(), false) else { panic!("after the linger a miss fetches again") };
    again.unlock(LockStatus::Done);
}

#[tokio::test]
async fn a_failed_fill_lets_the_next_request_fetch() {
    let lock = FillLock::new(Duration::from_secs(10));
    let Locked::Write(permit) = lock.lock(&key(), false) else { panic!() };
    lock.release(&key(), permit, LockStatus::TransientError);
    let Locked::Write(mut again) = lock.lock(&key(), false) else { panic!("refetch after a failure") };
    again.unlock(LockStatus::Done);
}
