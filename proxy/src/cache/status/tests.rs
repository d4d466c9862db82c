use super::*;

#[test]
fn rfc_9211_forms() {
    let cases = [
        (header_value(Outcome::Hit, Some(4), false, None), "dime; hit; ttl=4"),
        (header_value(Outcome::Stale, Some(-3), false, Some("stale")), "dime; hit; ttl=-3; detail=stale"),
        (header_value(Outcome::Miss, None, true, None), "dime; fwd=miss; stored"),
        (header_value(Outcome::Miss, None, false, Some("no-store")), "dime; fwd=miss; detail=no-store"),
        (header_value(Outcome::Expired, None, true, None), "dime; fwd=stale; stored"),
        (header_value(Outcome::Revalidated, Some(60), false, None), "dime; fwd=stale; fwd-status=304; ttl=60"),
        (header_value(Outcome::Bypass("method"), None, false, None), "dime; fwd=bypass; detail=method"),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}
