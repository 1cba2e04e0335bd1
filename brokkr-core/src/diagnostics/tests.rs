//! The request lifecycle: claims, results, expiry and their transitions.

use proptest::prelude::*;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

fn request() -> DiagnosticRequest {
    DiagnosticRequest::new(
        DeploymentObjectId::new(),
        AgentId::new(),
        "ops@example.com",
        &DiagnosticPolicy::default(),
        t0(),
    )
}

fn claimed(token: Option<&str>) -> DiagnosticRequest {
    let mut r = request();
    let agent = r.agent_id;
    assert_eq!(
        r.claim(agent, token, t0() + mins(1)),
        Ok(ClaimOutcome::Claimed)
    );
    r
}

#[test]
fn new_request_is_pending_with_deadlines() {
    let r = request();
    assert_eq!(r.status, DiagnosticStatus::Pending);
    assert_eq!(r.claim_deadline, t0() + mins(10));
    assert_eq!(r.expires_at, t0() + mins(60));
    assert_eq!(r.requested_by, "ops@example.com");
    assert!(!r.is_expired(t0() + mins(9)));
    assert!(!r.should_delete(t0()));
}

#[test]
fn owner_claims_a_pending_request() {
    let r = claimed(Some("tok-1"));
    assert_eq!(r.status, DiagnosticStatus::Claimed);
    assert_eq!(r.claimed_at, Some(t0() + mins(1)));
    assert_eq!(r.claim_token.as_deref(), Some("tok-1"));
}

#[test]
fn another_agent_may_not_claim_or_finish() {
    let mut r = request();
    let before = r.clone();
    let stranger = AgentId::new();
    assert_eq!(
        r.claim(stranger, None, t0()),
        Err(TransitionError::NotOwner)
    );
    assert_eq!(r, before);
    let mut r = claimed(None);
    assert_eq!(r.complete(stranger, t0()), Err(TransitionError::NotOwner));
    assert_eq!(r.fail(stranger, "x", t0()), Err(TransitionError::NotOwner));
    assert_eq!(r.status, DiagnosticStatus::Claimed);
}

#[test]
fn claim_is_allowed_just_before_the_deadline_but_not_at_it() {
    let mut r = request();
    let agent = r.agent_id;
    let before = r.clone();
    assert_eq!(
        r.claim(agent, None, t0() + mins(10)),
        Err(TransitionError::Expired)
    );
    assert_eq!(r, before, "a refused claim changes nothing");
    let just_before = t0() + mins(10) - Duration::nanoseconds(1);
    assert_eq!(r.claim(agent, None, just_before), Ok(ClaimOutcome::Claimed));
}

#[test]
fn retry_with_the_holders_token_is_idempotent() {
    let mut r = claimed(Some("tok-1"));
    let agent = r.agent_id;
    let before = r.clone();
    assert_eq!(
        r.claim(agent, Some("tok-1"), t0() + mins(2)),
        Ok(ClaimOutcome::AlreadyHeld)
    );
    assert_eq!(r, before, "the retry keeps the original claim time");
}

#[test]
fn second_claim_without_or_with_other_token_conflicts() {
    let mut r = claimed(Some("tok-1"));
    let agent = r.agent_id;
    assert_eq!(
        r.claim(agent, None, t0() + mins(2)),
        Err(TransitionError::AlreadyClaimed)
    );
    assert_eq!(
        r.claim(agent, Some("tok-2"), t0() + mins(2)),
        Err(TransitionError::AlreadyClaimed)
    );
    assert_eq!(
        r.claim(agent, Some(""), t0() + mins(2)),
        Err(TransitionError::AlreadyClaimed)
    );
}

#[test]
fn token_less_claims_never_match_each_other() {
    let mut r = claimed(None);
    let agent = r.agent_id;
    assert_eq!(r.claim_token, None);
    assert_eq!(
        r.claim(agent, None, t0() + mins(2)),
        Err(TransitionError::AlreadyClaimed)
    );
    // An empty token is no token: it cannot be used to win a retry either.
    let mut r = claimed(Some(""));
    assert_eq!(r.claim_token, None);
    let agent = r.agent_id;
    assert_eq!(
        r.claim(agent, Some(""), t0() + mins(2)),
        Err(TransitionError::AlreadyClaimed)
    );
}

#[test]
fn completing_restarts_retention_from_completion() {
    let mut r = claimed(None);
    let agent = r.agent_id;
    let done = t0() + mins(30);
    assert_eq!(r.complete(agent, done), Ok(()));
    assert_eq!(r.status, DiagnosticStatus::Completed);
    assert_eq!(r.completed_at, Some(done));
    assert_eq!(r.expires_at, done + mins(60));
    assert_eq!(r.failure_reason, None);
    assert!(!r.is_expired(done + mins(59)));
    assert!(!r.should_delete(done + mins(59)));
    assert!(r.should_delete(done + mins(60)));
}

#[test]
fn failing_records_the_reason() {
    let mut r = claimed(None);
    let agent = r.agent_id;
    let at = t0() + mins(2);
    assert_eq!(r.fail(agent, "pods: forbidden", at), Ok(()));
    assert_eq!(r.status, DiagnosticStatus::Failed);
    assert_eq!(r.failure_reason.as_deref(), Some("pods: forbidden"));
    assert_eq!(r.completed_at, Some(at));
    assert_eq!(r.expires_at, at + mins(60));
}

#[test]
fn only_one_result_per_request() {
    let mut r = claimed(None);
    let agent = r.agent_id;
    r.complete(agent, t0() + mins(2)).unwrap();
    let before = r.clone();
    let finished = Err(TransitionError::AlreadyFinished {
        status: DiagnosticStatus::Completed,
    });
    assert_eq!(r.complete(agent, t0() + mins(3)), finished);
    assert_eq!(r.fail(agent, "late", t0() + mins(3)), finished);
    assert_eq!(r.claim(agent, None, t0() + mins(3)).map(|_| ()), finished);
    assert_eq!(r, before);
}

#[test]
fn result_for_an_unclaimed_request_conflicts() {
    let mut r = request();
    let agent = r.agent_id;
    assert_eq!(
        r.complete(agent, t0() + mins(1)),
        Err(TransitionError::NotClaimed)
    );
    assert_eq!(
        r.fail(agent, "x", t0() + mins(1)),
        Err(TransitionError::NotClaimed)
    );
    // After the claim deadline the unclaimed request is gone, not merely unclaimed.
    assert_eq!(
        r.complete(agent, t0() + mins(10)),
        Err(TransitionError::Expired)
    );
}

#[test]
fn claimed_request_must_finish_before_expires_at() {
    let mut r = claimed(None);
    let agent = r.agent_id;
    let just_before = t0() + mins(60) - Duration::nanoseconds(1);
    assert!(!r.is_expired(just_before));
    let mut late = r.clone();
    assert_eq!(
        late.complete(agent, t0() + mins(60)),
        Err(TransitionError::Expired)
    );
    assert_eq!(r.complete(agent, just_before), Ok(()));
}

#[test]
fn expire_records_missed_deadlines_once() {
    let mut pending = request();
    assert!(!pending.expire(t0() + mins(10) - Duration::seconds(1)));
    assert_eq!(pending.status, DiagnosticStatus::Pending);
    assert!(pending.expire(t0() + mins(10)));
    assert_eq!(pending.status, DiagnosticStatus::Expired);
    assert!(
        !pending.expire(t0() + mins(11)),
        "second run changes nothing"
    );
    let agent = pending.agent_id;
    assert_eq!(
        pending.claim(agent, None, t0() + mins(11)),
        Err(TransitionError::Expired)
    );

    let mut held = claimed(None);
    assert!(
        !held.expire(t0() + mins(30)),
        "claimed survives the claim deadline"
    );
    assert!(held.expire(t0() + mins(60)));
    assert_eq!(held.status, DiagnosticStatus::Expired);

    let mut done = claimed(None);
    let agent = done.agent_id;
    done.complete(agent, t0() + mins(2)).unwrap();
    assert!(
        !done.expire(t0() + mins(500)),
        "finished requests never expire"
    );
    assert_eq!(done.status, DiagnosticStatus::Completed);
}

#[test]
fn status_at_shows_expiry_before_it_is_recorded() {
    let r = request();
    assert_eq!(r.status_at(t0() + mins(9)), DiagnosticStatus::Pending);
    assert_eq!(r.status_at(t0() + mins(10)), DiagnosticStatus::Expired);
    assert_eq!(r.status, DiagnosticStatus::Pending);
}

#[test]
fn cleanup_deletes_after_retention_only() {
    let mut r = request();
    assert!(
        !r.should_delete(t0() + mins(30)),
        "expired but still retained"
    );
    assert!(
        r.should_delete(t0() + mins(60)),
        "unrecorded expiry still counts"
    );
    r.expire(t0() + mins(15));
    assert!(!r.should_delete(t0() + mins(59)));
    assert!(r.should_delete(t0() + mins(60)));
    let held = claimed(None);
    assert!(!held.should_delete(t0() + mins(59)));
    assert!(held.should_delete(t0() + mins(60)));
}

#[test]
fn transition_errors_map_to_api_outcomes() {
    assert!(matches!(
        Error::from(TransitionError::NotOwner),
        Error::Forbidden(_)
    ));
    assert!(matches!(
        Error::from(TransitionError::AlreadyClaimed),
        Error::Conflict(_)
    ));
    assert!(matches!(
        Error::from(TransitionError::NotClaimed),
        Error::Conflict(_)
    ));
    assert_eq!(
        Error::from(TransitionError::AlreadyFinished {
            status: DiagnosticStatus::Failed
        }),
        Error::Conflict("diagnostics request is already failed".into())
    );
    assert!(matches!(
        Error::from(TransitionError::Expired),
        Error::Gone(_)
    ));
}

#[test]
fn request_serializes_status_and_omits_unset_times() {
    let r = request();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["status"], "pending");
    assert_eq!(json["expires_at"], "2026-03-01T13:00:00Z");
    assert!(json.get("claimed_at").is_none());
    assert_eq!(
        serde_json::from_value::<DiagnosticRequest>(json).unwrap(),
        r
    );
}

#[test]
fn policy_validation() {
    assert!(DiagnosticPolicy::default().validate().is_ok());
    let inverted = DiagnosticPolicy {
        claim_deadline: mins(90),
        retention: mins(60),
    };
    assert!(
        matches!(inverted.validate(), Err(Error::Invalid(e)) if e[0].field == "claim_deadline")
    );
    let zero = DiagnosticPolicy {
        claim_deadline: mins(10),
        retention: Duration::zero(),
    };
    assert!(zero.validate().is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Claim {
        owner: bool,
        token: Option<&'static str>,
    },
    Complete {
        owner: bool,
    },
    Fail {
        owner: bool,
    },
    Expire,
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["a", "b", ""]))
        )
            .prop_map(|(owner, token)| Op::Claim { owner, token }),
        any::<bool>().prop_map(|owner| Op::Complete { owner }),
        any::<bool>().prop_map(|owner| Op::Fail { owner }),
        Just(Op::Expire),
        (0_i64..1_500).prop_map(Op::Advance),
    ]
}

fn assert_legal(r: &DiagnosticRequest, policy: &DiagnosticPolicy) {
    let unfinished_expiry = r.created_at + policy.retention;
    assert_eq!(r.claim_deadline, r.created_at + policy.claim_deadline);
    assert_ne!(r.claim_token.as_deref(), Some(""));
    match r.status {
        DiagnosticStatus::Pending => {
            assert_eq!(r.claimed_at, None);
            assert_eq!(r.claim_token, None);
            assert_eq!(r.completed_at, None);
            assert_eq!(r.expires_at, unfinished_expiry);
        }
        DiagnosticStatus::Claimed => {
            let claimed_at = r.claimed_at.unwrap();
            assert!(claimed_at >= r.created_at && claimed_at < r.claim_deadline);
            assert_eq!(r.completed_at, None);
            assert_eq!(r.expires_at, unfinished_expiry);
        }
        DiagnosticStatus::Completed | DiagnosticStatus::Failed => {
            let claimed_at = r.claimed_at.unwrap();
            let completed_at = r.completed_at.unwrap();
            assert!(completed_at >= claimed_at);
            assert!(completed_at < unfinished_expiry);
            assert_eq!(r.expires_at, completed_at + policy.retention);
            assert_eq!(
                r.failure_reason.is_some(),
                r.status == DiagnosticStatus::Failed
            );
        }
        DiagnosticStatus::Expired => {
            assert_eq!(r.completed_at, None);
            assert_eq!(r.expires_at, unfinished_expiry);
        }
    }
    if r.status != DiagnosticStatus::Failed {
        assert_eq!(r.failure_reason, None);
    }
}

proptest! {
    #[test]
    fn no_sequence_of_operations_reaches_an_illegal_state(
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let policy = DiagnosticPolicy::default();
        let mut r = request();
        let owner = r.agent_id;
        let stranger = AgentId::new();
        let who = |is_owner: bool| if is_owner { owner } else { stranger };
        let mut now = t0();
        let mut wins = 0;
        for op in ops {
            let before = r.clone();
            let result = match op {
                Op::Claim { owner, token } => {
                    let outcome = r.claim(who(owner), token, now);
                    if outcome == Ok(ClaimOutcome::Claimed) {
                        wins += 1;
                    }
                    outcome.map(|_| ())
                }
                Op::Complete { owner } => r.complete(who(owner), now),
                Op::Fail { owner } => r.fail(who(owner), "cannot list pods", now),
                Op::Expire => {
                    r.expire(now);
                    Ok(())
                }
                Op::Advance(secs) => {
                    now += Duration::seconds(secs);
                    Ok(())
                }
            };
            if result.is_err() {
                prop_assert_eq!(&r, &before, "a refused transition changed the request");
            }
            if before.status.is_terminal() {
                prop_assert_eq!(r.status, before.status, "left a terminal state");
            }
            assert_legal(&r, &policy);
        }
        prop_assert!(wins <= 1, "more than one claim won");
    }
}
