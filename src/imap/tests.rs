use std::time::Duration;

use super::examine::decode_subject;
use super::*;
use crate::config;

#[test]
fn uid_sets_are_compact_ranges() {
    let uids: Vec<Uid> = [9, 1, 2, 3, 7, 10, 12, 3].into_iter().map(Uid).collect();
    assert_eq!(uid_set(&uids), "1:3,7,9:10,12");
    assert_eq!(uid_set(&[]), "");
}

#[test]
fn fetches_are_bounded_in_bytes_and_oversized_mail_is_fetched_headers_only() {
    const MIB: u64 = 1024 * 1024;
    let sized: Vec<(Uid, u64)> = [
        (1, 10 * MIB),
        (2, 10 * MIB),
        (3, 30 * MIB),
        (4, 5 * MIB),
        (5, 25 * MIB),
        (6, 1),
    ]
    .into_iter()
    .map(|(uid, size)| (Uid(uid), size))
    .collect();
    let plans = plan_fetches(&sized, 25 * MIB, 16 * MIB);
    let whole = |uids: &[u32], kib: &[u32]| FetchPlan::Whole {
        uids: uids.iter().copied().map(Uid).collect(),
        kib: kib.to_vec(),
    };
    assert_eq!(
        plans,
        vec![
            whole(&[1], &[10 * 1024]),
            whole(&[2], &[10 * 1024]),
            FetchPlan::HeaderOnly {
                uid: Uid(3),
                size: 30 * MIB
            },
            // A message up to the size cap is fetched whole, alone if it must be.
            whole(&[4], &[5 * 1024]),
            whole(&[5], &[25 * 1024]),
            whole(&[6], &[1]),
        ]
    );
    // Whatever the mailbox holds, no fetch is over the bound unless it is one message.
    let many: Vec<(Uid, u64)> = (1..=10_000).map(|uid| (Uid(uid), 300 * 1024)).collect();
    let plans = plan_fetches(&many, 25 * MIB, 16 * MIB);
    let mut seen = 0;
    for plan in &plans {
        let FetchPlan::Whole { uids, kib } = plan else {
            panic!("nothing is oversized: {plan:?}");
        };
        assert!(kib.iter().map(|k| u64::from(*k) * 1024).sum::<u64>() <= 16 * MIB);
        seen += uids.len();
    }
    assert_eq!(seen, 10_000);
}

#[tokio::test]
async fn the_budget_holds_fetched_mail_until_it_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("casemail.toml");
    std::fs::write(
        &path,
        "[helpdesk]\naddress = \"help@charity.example\"\n[imap]\nhost = \"imap.example\"\nusername = \"help\"\npassword = \"x\"\n[smtp]\nhost = \"smtp.example\"\n[ingest]\nmax_message_size = \"1MiB\"\nfetch_bytes = \"2MiB\"\n",
    )
    .expect("write config");
    let config = config::load_with_env(&path, &std::collections::HashMap::new()).expect("config");
    let budget = Budget::new(&config.ingest);
    let first = budget.reserve(1536).await.expect("free");
    assert_eq!(budget.in_use_kib(), 1536);
    // More than is left waits until the first is given back.
    let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1024)).await;
    assert!(waiting.is_err(), "the budget is bounded");
    drop(first);
    let second = budget.reserve(1024).await.expect("free again");
    // A reservation over the whole budget is cut to it rather than waiting for ever.
    drop(second);
    let all = budget.reserve(u32::MAX).await.expect("the whole budget");
    assert_eq!(budget.in_use_kib(), 2048);
    drop(all);
    assert_eq!(budget.in_use_kib(), 0);
}

#[test]
fn envelope_subjects_are_decoded() {
    assert_eq!(decode_subject(b"=?utf-8?q?Gr=C3=BC=C3=9Fe?="), "Grüße");
    assert_eq!(decode_subject(b"plain words"), "plain words");
}
