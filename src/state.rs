//! The work-request state machine: states, events and the one transition
//! function every state change goes through. Pure: no I/O, no clock.

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as stored and as shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Where a work request stands.
    State {
        New => "new",
        Incomplete => "incomplete",
        Review => "review",
        Queued => "queued",
        Processing => "processing",
        Limbo => "limbo",
        Failed => "failed",
        Finished => "finished",
    }
);

string_enum!(
    /// What a request in `processing` waits for.
    WaitingOn {
        Internal => "internal",
        Registry => "registry",
        Registrant => "registrant",
        Operator => "operator",
    }
);

string_enum!(
    /// Why a request ended `failed`.
    Failure {
        Aborted => "aborted",
        Duplicate => "duplicate",
        Invalid => "invalid",
        Registry => "registry",
        Declined => "declined",
        Dependency => "dependency",
        Expired => "expired",
    }
);

string_enum!(
    /// The operations a work request can carry.
    Operation {
        Create => "create",
        Transfer => "transfer",
        Renew => "renew",
        Update => "update",
        Release => "release",
        Delete => "delete",
        Hold => "hold",
        Backorder => "backorder",
        Privacy => "privacy",
        Restore => "restore",
    }
);

impl State {
    /// `failed` and `finished` never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Failed | State::Finished)
    }
}

/// Who causes an event, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The customer account that owns the request.
    Owner,
    /// An operator (who may also act as an owner would).
    Operator,
    /// The ticker, the registry back end or a timeout.
    System,
}

/// How an operator closes a request that waits or sits in limbo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Finished,
    Failed(Failure),
}

/// Something that happens to a work request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The owner submits the order form. `missing` lists the required fields
    /// that are absent; `needs_review` says whether an operator must authorise.
    Submit { missing: bool, needs_review: bool },
    /// The owner changes the order form.
    UpdateParams,
    /// An operator authorises a request in review.
    Authorise,
    /// An operator sends a request back to its owner with an annotation.
    SendBack,
    /// The owner or an operator gives the request up.
    Abort,
    /// Submitting another request for the same domain and operation.
    Duplicate,
    /// `cancel-pending`: the request sat unsubmitted for too long.
    Expire,
    /// The ticker picks a due request up.
    Claim,
    /// The registry accepted the operation.
    Accepted,
    /// The registry answered asynchronously; the request waits.
    Wait(WaitingOn),
    /// The registry refused for a reason the owner can fix.
    UserError,
    /// The registry refused definitively.
    Refused(Failure),
    /// Something unexpected went wrong and retries are exhausted.
    Unexpected,
    /// An incoming registry event or an operator closes a waiting request.
    Resolve(Resolution),
    /// An operator sends a request in limbo back to the queue.
    Retry,
    /// The request this one depends on failed.
    DependencyFailed,
}

/// Where an allowed event leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub state: State,
    pub waiting_on: Option<WaitingOn>,
    pub failure: Option<Failure>,
}

/// Why an event is refused in the current state. Its message is written
/// only when asked for: `allowed_actions` probes every event for each
/// request page and drops the refusals, so formatting a message nobody
/// reads would be paid on every answer that shows a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The event is not taken in this state, or not from this actor.
    Event {
        state: State,
        event: &'static str,
        why: &'static str,
    },
    /// A request is resolved as failed only for a reason the registry or
    /// an abort could have given.
    Resolution(Failure),
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Event { state, event, why } => {
                format!("cannot {event} a request in state {state}: {why}")
            }
            Refusal::Resolution(f) => format!("a request cannot be resolved as failed ({f})"),
        }
    }
}

impl Event {
    /// The event's name in the transition log.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Submit { .. } => "submit",
            Event::UpdateParams => "update",
            Event::Authorise => "authorise",
            Event::SendBack => "send-back",
            Event::Abort => "abort",
            Event::Duplicate => "duplicate",
            Event::Expire => "expire",
            Event::Claim => "claim",
            Event::Accepted => "accepted",
            Event::Wait(_) => "wait",
            Event::UserError => "user-error",
            Event::Refused(_) => "refused",
            Event::Unexpected => "unexpected-error",
            Event::Resolve(_) => "resolve",
            Event::Retry => "retry",
            Event::DependencyFailed => "dependency-failed",
        }
    }

    /// Which actors may cause this event at all.
    fn permitted(&self, actor: Actor) -> bool {
        use Actor::*;
        match self {
            // The system places orders too: auto-renewals, deletions.
            Event::Submit { .. } => true,
            Event::UpdateParams | Event::Abort | Event::Expire => {
                matches!(actor, Owner | Operator)
            }
            Event::Authorise | Event::SendBack | Event::Retry => actor == Operator,
            Event::Resolve(_) => matches!(actor, Operator | System),
            Event::Duplicate
            | Event::Claim
            | Event::Accepted
            | Event::Wait(_)
            | Event::UserError
            | Event::Refused(_)
            | Event::Unexpected
            | Event::DependencyFailed => actor == System,
        }
    }
}

const fn to(state: State) -> Next {
    Next {
        state,
        waiting_on: None,
        failure: None,
    }
}

const fn failed(failure: Failure) -> Next {
    Next {
        state: State::Failed,
        waiting_on: None,
        failure: Some(failure),
    }
}

const fn processing(waiting_on: WaitingOn) -> Next {
    Next {
        state: State::Processing,
        waiting_on: Some(waiting_on),
        failure: None,
    }
}

/// The one transition function: where `event`, caused by `actor`, takes a
/// request that is in `state` (waiting on `waiting_on` while processing).
pub fn transition(
    state: State,
    waiting_on: Option<WaitingOn>,
    event: &Event,
    actor: Actor,
) -> Result<Next, Refusal> {
    use State::*;
    if !event.permitted(actor) {
        return Err(refuse(state, event, "not permitted for this account"));
    }
    let waiting = state == Processing && waiting_on.is_some_and(|w| w != WaitingOn::Internal);
    let next = match (state, event) {
        (
            New | Incomplete,
            Event::Submit {
                missing,
                needs_review,
            },
        ) => {
            if *missing {
                to(Incomplete)
            } else if *needs_review {
                to(Review)
            } else {
                to(Queued)
            }
        }
        (New | Incomplete, Event::UpdateParams) => to(state),
        (Review, Event::Authorise) => processing(WaitingOn::Internal),
        (Review | Limbo, Event::SendBack) => to(Incomplete),
        (Processing, Event::SendBack) if waiting => to(Incomplete),
        (Review | New | Incomplete | Queued, Event::Abort) => failed(Failure::Aborted),
        (Limbo, Event::Abort) if actor == Actor::Operator => failed(Failure::Aborted),
        (New | Incomplete, Event::Duplicate) => failed(Failure::Duplicate),
        (New | Incomplete, Event::Expire) => failed(Failure::Expired),
        (Queued, Event::Claim) => processing(WaitingOn::Internal),
        (Processing, Event::Accepted) => to(Finished),
        (Processing, Event::Wait(w)) if *w != WaitingOn::Internal => processing(*w),
        (Processing, Event::UserError) => to(Incomplete),
        (Processing, Event::Refused(f)) if is_refusal(*f) => failed(*f),
        (Processing, Event::Unexpected) => to(Limbo),
        (Processing, Event::Resolve(r)) if waiting => resolved(*r)?,
        (Limbo, Event::Resolve(r)) if actor == Actor::Operator => resolved(*r)?,
        (Limbo, Event::Retry) => to(Queued),
        (Queued, Event::DependencyFailed) => failed(Failure::Dependency),
        _ => return Err(refuse(state, event, "not allowed in this state")),
    };
    debug_assert!(!state.is_terminal(), "a terminal state never changes");
    debug_assert!(
        (next.state == Processing) == next.waiting_on.is_some(),
        "waiting_on is set exactly while processing"
    );
    debug_assert!(
        (next.state == Failed) == next.failure.is_some(),
        "failure is set exactly when failed"
    );
    Ok(next)
}

/// Failures that the registry (or a closing operator) may give.
fn is_refusal(failure: Failure) -> bool {
    matches!(
        failure,
        Failure::Registry | Failure::Invalid | Failure::Declined
    )
}

fn resolved(resolution: Resolution) -> Result<Next, Refusal> {
    match resolution {
        Resolution::Finished => Ok(to(State::Finished)),
        Resolution::Failed(f) if is_refusal(f) || f == Failure::Aborted => Ok(failed(f)),
        Resolution::Failed(f) => Err(Refusal::Resolution(f)),
    }
}

fn refuse(state: State, event: &Event, why: &'static str) -> Refusal {
    Refusal::Event {
        state,
        event: event.name(),
        why,
    }
}

string_enum!(
    /// What a user may do to a request: parsed from its name here only, and
    /// offered (`allowed_actions`) from the transition function's answers.
    Action {
        Submit => "submit",
        Authorise => "authorise",
        SendBack => "send-back",
        Abort => "abort",
        Retry => "retry",
        Resolve => "resolve",
        Annotate => "annotate",
    }
);

impl Action {
    /// The event the action causes, as `allowed_actions` probes it; none for
    /// annotate, which changes no state.
    fn probe(self) -> Option<Event> {
        Some(match self {
            Action::Submit => Event::Submit {
                missing: false,
                needs_review: false,
            },
            Action::Authorise => Event::Authorise,
            Action::SendBack => Event::SendBack,
            Action::Abort => Event::Abort,
            Action::Retry => Event::Retry,
            Action::Resolve => Event::Resolve(Resolution::Finished),
            Action::Annotate => return None,
        })
    }

    /// Whether only operators may take it.
    pub fn operator_only(self) -> bool {
        matches!(
            self,
            Action::Authorise | Action::SendBack | Action::Retry | Action::Resolve
        )
    }
}

/// The actions `actor` may take now on a request in `state`: exactly those
/// the transition function would accept (plus annotate, always allowed).
pub fn allowed_actions(
    state: State,
    waiting_on: Option<WaitingOn>,
    actor: Actor,
) -> Vec<&'static str> {
    Action::ALL
        .iter()
        .filter(|action| match action.probe() {
            Some(event) => transition(state, waiting_on, &event, actor).is_ok(),
            None => actor != Actor::System,
        })
        .map(|action| action.as_str())
        .collect()
}

/// The OpenSRS `order_status` a request shows (SPEC section 4).
pub fn order_status(
    state: State,
    waiting_on: Option<WaitingOn>,
    failure: Option<Failure>,
) -> &'static str {
    match state {
        State::New | State::Incomplete | State::Review => "pending",
        State::Queued | State::Limbo => "waiting",
        State::Processing => match waiting_on {
            Some(WaitingOn::Registry | WaitingOn::Registrant) => "processed",
            _ => "waiting",
        },
        State::Finished => "completed",
        State::Failed => match failure {
            Some(Failure::Aborted | Failure::Duplicate | Failure::Expired) => "canceled",
            _ => "declined",
        },
    }
}

/// The BDOM task `STATUS` a request shows (SPEC section 4).
pub fn task_status(
    state: State,
    waiting_on: Option<WaitingOn>,
    failure: Option<Failure>,
) -> &'static str {
    match state {
        State::Finished => "SUCCESS",
        State::New | State::Review | State::Queued | State::Limbo => "PENDING_INT",
        State::Processing => match waiting_on {
            Some(WaitingOn::Registry | WaitingOn::Registrant) => "PENDING_EXT",
            _ => "PENDING_INT",
        },
        State::Failed if failure == Some(Failure::Registry) => "FAILED_EXT",
        State::Incomplete | State::Failed => "FAILED_INT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    fn events() -> Vec<Event> {
        let mut all = vec![
            Event::Submit {
                missing: true,
                needs_review: false,
            },
            Event::Submit {
                missing: false,
                needs_review: true,
            },
            Event::Submit {
                missing: false,
                needs_review: false,
            },
            Event::UpdateParams,
            Event::Authorise,
            Event::SendBack,
            Event::Abort,
            Event::Duplicate,
            Event::Expire,
            Event::Claim,
            Event::Accepted,
            Event::UserError,
            Event::Unexpected,
            Event::Retry,
            Event::DependencyFailed,
        ];
        all.extend(WaitingOn::ALL.iter().map(|w| Event::Wait(*w)));
        all.extend(Failure::ALL.iter().map(|f| Event::Refused(*f)));
        all.push(Event::Resolve(Resolution::Finished));
        all.extend(
            Failure::ALL
                .iter()
                .map(|f| Event::Resolve(Resolution::Failed(*f))),
        );
        all
    }

    /// The expected outcome of every (state, waiting_on, event, actor), written
    /// out as the SPEC's table says, independently of `transition`.
    fn expected(state: State, w: Option<WaitingOn>, e: &Event, a: Actor) -> Option<Next> {
        use Actor::*;
        let owner_like = matches!(a, Owner | Operator);
        let waiting = state == Processing && w != Some(WaitingOn::Internal);
        let n = |s| Some(to(s));
        match e {
            Event::Submit {
                missing,
                needs_review,
            } if matches!(state, New | Incomplete) => {
                if *missing {
                    n(Incomplete)
                } else if *needs_review {
                    n(Review)
                } else {
                    n(Queued)
                }
            }
            Event::UpdateParams if owner_like && matches!(state, New | Incomplete) => n(state),
            Event::Authorise if a == Operator && state == Review => {
                Some(processing(WaitingOn::Internal))
            }
            Event::SendBack if a == Operator && (matches!(state, Review | Limbo) || waiting) => {
                n(Incomplete)
            }
            Event::Abort if owner_like && matches!(state, Review | New | Incomplete | Queued) => {
                Some(failed(Failure::Aborted))
            }
            Event::Abort if a == Operator && state == Limbo => Some(failed(Failure::Aborted)),
            Event::Duplicate if a == System && matches!(state, New | Incomplete) => {
                Some(failed(Failure::Duplicate))
            }
            Event::Expire if owner_like && matches!(state, New | Incomplete) => {
                Some(failed(Failure::Expired))
            }
            Event::Claim if a == System && state == Queued => Some(processing(WaitingOn::Internal)),
            Event::Accepted if a == System && state == Processing => n(Finished),
            Event::Wait(x) if a == System && state == Processing && *x != WaitingOn::Internal => {
                Some(processing(*x))
            }
            Event::UserError if a == System && state == Processing => n(Incomplete),
            Event::Refused(f)
                if a == System
                    && state == Processing
                    && matches!(f, Failure::Registry | Failure::Invalid | Failure::Declined) =>
            {
                Some(failed(*f))
            }
            Event::Unexpected if a == System && state == Processing => n(Limbo),
            Event::Resolve(r)
                if (matches!(a, Operator | System) && waiting)
                    || (a == Operator && state == Limbo) =>
            {
                match r {
                    Resolution::Finished => n(Finished),
                    Resolution::Failed(f)
                        if matches!(
                            f,
                            Failure::Registry
                                | Failure::Invalid
                                | Failure::Declined
                                | Failure::Aborted
                        ) =>
                    {
                        Some(failed(*f))
                    }
                    Resolution::Failed(_) => None,
                }
            }
            Event::Retry if a == Operator && state == Limbo => n(Queued),
            Event::DependencyFailed if a == System && state == Queued => {
                Some(failed(Failure::Dependency))
            }
            _ => None,
        }
    }

    #[test]
    fn every_state_event_pair_matches_the_table() {
        let mut checked = 0;
        let mut allowed = 0;
        for &state in State::ALL {
            let waits: Vec<Option<WaitingOn>> = if state == Processing {
                WaitingOn::ALL.iter().map(|w| Some(*w)).collect()
            } else {
                vec![None]
            };
            for w in waits {
                for e in events() {
                    for a in [Actor::Owner, Actor::Operator, Actor::System] {
                        let got = transition(state, w, &e, a).ok();
                        let want = expected(state, w, &e, a);
                        assert_eq!(got, want, "{state} ({w:?}) --{e:?} by {a:?}");
                        checked += 1;
                        allowed += usize::from(got.is_some());
                    }
                }
            }
        }
        // 11 (state, waiting) combinations x every event x 3 actors.
        assert_eq!(checked, 11 * events().len() * 3);
        assert!(allowed > 60, "only {allowed} transitions allowed");
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for state in [Failed, Finished] {
            for e in events() {
                for a in [Actor::Owner, Actor::Operator, Actor::System] {
                    assert!(transition(state, None, &e, a).is_err());
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_event_and_state() {
        let err = transition(Finished, None, &Event::Abort, Actor::Owner).unwrap_err();
        assert_eq!(
            err.message(),
            "cannot abort a request in state finished: not allowed in this state"
        );
        let err = transition(Review, None, &Event::Authorise, Actor::Owner).unwrap_err();
        assert!(err.message().contains("not permitted"), "{}", err.message());
        let resolve = Event::Resolve(Resolution::Failed(Failure::Dependency));
        let err = transition(Limbo, None, &resolve, Actor::Operator).unwrap_err();
        assert_eq!(
            err.message(),
            "a request cannot be resolved as failed (dependency)"
        );
    }

    #[test]
    fn allowed_actions_follow_state_and_role() {
        assert_eq!(
            allowed_actions(Review, None, Actor::Operator),
            vec!["authorise", "send-back", "abort", "annotate"]
        );
        assert_eq!(
            allowed_actions(Review, None, Actor::Owner),
            vec!["abort", "annotate"]
        );
        assert_eq!(
            allowed_actions(Limbo, None, Actor::Operator),
            vec!["send-back", "abort", "retry", "resolve", "annotate"]
        );
        assert_eq!(
            allowed_actions(Processing, Some(WaitingOn::Internal), Actor::Operator),
            vec!["annotate"]
        );
        assert_eq!(
            allowed_actions(Processing, Some(WaitingOn::Operator), Actor::Operator),
            vec!["send-back", "resolve", "annotate"]
        );
        assert_eq!(
            allowed_actions(New, None, Actor::Owner),
            vec!["submit", "abort", "annotate"]
        );
        assert_eq!(
            allowed_actions(Finished, None, Actor::Operator),
            vec!["annotate"]
        );
    }

    #[test]
    fn status_mappings_follow_the_spec_tables() {
        use WaitingOn::*;
        let cases = [
            (New, None, None, "pending", "PENDING_INT"),
            (Incomplete, None, None, "pending", "FAILED_INT"),
            (Review, None, None, "pending", "PENDING_INT"),
            (Queued, None, None, "waiting", "PENDING_INT"),
            (Processing, Some(Internal), None, "waiting", "PENDING_INT"),
            (Processing, Some(Operator), None, "waiting", "PENDING_INT"),
            (Processing, Some(Registry), None, "processed", "PENDING_EXT"),
            (
                Processing,
                Some(Registrant),
                None,
                "processed",
                "PENDING_EXT",
            ),
            (Limbo, None, None, "waiting", "PENDING_INT"),
            (Finished, None, None, "completed", "SUCCESS"),
            (
                Failed,
                None,
                Some(Failure::Aborted),
                "canceled",
                "FAILED_INT",
            ),
            (
                Failed,
                None,
                Some(Failure::Duplicate),
                "canceled",
                "FAILED_INT",
            ),
            (
                Failed,
                None,
                Some(Failure::Expired),
                "canceled",
                "FAILED_INT",
            ),
            (
                Failed,
                None,
                Some(Failure::Registry),
                "declined",
                "FAILED_EXT",
            ),
            (
                Failed,
                None,
                Some(Failure::Invalid),
                "declined",
                "FAILED_INT",
            ),
            (
                Failed,
                None,
                Some(Failure::Declined),
                "declined",
                "FAILED_INT",
            ),
            (
                Failed,
                None,
                Some(Failure::Dependency),
                "declined",
                "FAILED_INT",
            ),
        ];
        for (s, w, f, order, task) in cases {
            assert_eq!(order_status(s, w, f), order, "{s} {w:?} {f:?}");
            assert_eq!(task_status(s, w, f), task, "{s} {w:?} {f:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(*s));
        }
        for o in Operation::ALL {
            assert_eq!(o.as_str().parse::<Operation>(), Ok(*o));
        }
        assert!("Queued".parse::<State>().is_err());
    }
}
