//! Fault injection: a decorator that makes any port throttle, fail or be
//! slow, on a plan that a test can change while the code under test runs.
//!
//! The AWS side fails in ways the memory adapters never do. DynamoDB
//! throttles a hot partition (`ProvisionedThroughputExceededException`), a
//! service has an outage, a call takes seconds, and, nastiest of all, a call
//! times out *after* DynamoDB applied the write, so the caller sees an error
//! for work that was done. [`Faulty`] wraps a port and lets its [`Faults`]
//! plan decide, call by call, which of these happens ([`Fault`]), and counts
//! what it injected so that a test can show its faults really fired.
//!
//! Plans are deterministic: "the next N calls", "every k-th call", or "with
//! probability p" drawn from a seeded generator, so a failing run fails
//! the same way again.
//!
//! ```
//! use std::sync::Arc;
//! use wca_core::faults::{Fault, Faults, Faulty, Rule, When};
//! use wca_core::{Begin, IdempotencyStore, memory::MemoryIdempotency};
//!
//! # tokio_test_block_on(async {
//! let faults = Faults::new(Rule::new(Fault::Throttle, When::Next(1)));
//! let dedup = Faulty::new(Arc::new(MemoryIdempotency::default()), faults.clone());
//! let refused = dedup.begin("msg:1", 1_700_000_000, 8).await.unwrap_err();
//! assert!(refused.to_string().contains("throttled"));
//! // The throttled call never reached the store: the key is still free.
//! assert_eq!(dedup.begin("msg:1", 1_700_000_000, 8).await.unwrap(), Begin::Fresh);
//! assert_eq!(faults.injected(), 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Archived, ArchivedMessage, ArchivedReply, Begin, Committed, ConversationState,
    ConversationStore, Counters, Erased, Event, EventLog, EventSink, IdempotencyStore,
    MessageArchive, MessageCommit, MessageWrites, OpenId, PortError, UserData, UserRecord,
    Versioned,
};

/// What happens to a call that a [`Rule`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it reaches the port, as DynamoDB refuses a request
    /// over a partition's throughput: [`PortError::Unavailable`] whose
    /// message says "throttled".
    Throttle,
    /// Refused before it reaches the port, as by a store that is down:
    /// [`PortError::Unavailable`].
    Outage,
    /// Passed to the port, then reported as failed all the same: the write
    /// happened but the caller sees [`PortError::Unavailable`], as after a
    /// timeout that struck once DynamoDB had applied the write. A call the
    /// port itself failed returns the port's own error.
    AfterSuccess,
    /// Held for this long (on the tokio timer), then passed to the port.
    Slow(Duration),
}

/// Which of the calls a [`Rule`] sees it picks. A rule sees the calls that
/// no earlier rule of the plan took, counted from when it was added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Every call.
    Always,
    /// The next `n` calls, and none after them.
    Next(u64),
    /// The `k`-th, `2k`-th, ... call (`Every(1)` is every call, `Every(0)`
    /// none).
    Every(u64),
    /// Each call with probability `p` (0.0 to 1.0), drawn from a generator
    /// seeded with `seed`: the same calls in the same order draw the same
    /// faults on every run.
    Chance {
        /// The probability of a fault per call.
        p: f64,
        /// The generator's seed.
        seed: u64,
    },
}

/// One line of a plan: a [`Fault`], [`When`] it strikes, and the operations
/// it applies to (all of them unless narrowed with [`Rule::on`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    fault: Fault,
    when: When,
    ops: Vec<String>,
}

impl Rule {
    /// `fault` on the calls `when` picks, of every operation.
    pub fn new(fault: Fault, when: When) -> Self {
        Self {
            fault,
            when,
            ops: Vec::new(),
        }
    }

    /// Narrows the rule to the operation `op` (`"dedup.complete"`) or to
    /// every operation of a port (`"dedup"`); call it again to add more.
    /// The names are listed on [`Faulty`].
    pub fn on(mut self, op: impl Into<String>) -> Self {
        self.ops.push(op.into());
        self
    }

    fn applies_to(&self, op: &str) -> bool {
        self.ops.is_empty() || self.ops.iter().any(|pattern| op_matches(pattern, op))
    }
}

/// Whether `pattern` names `op` itself or the port `op` belongs to.
fn op_matches(pattern: &str, op: &str) -> bool {
    op == pattern
        || op
            .strip_prefix(pattern)
            .is_some_and(|method| method.starts_with('.'))
}

/// A rule with its own count of the calls it has seen.
#[derive(Debug)]
struct Armed {
    rule: Rule,
    seen: u64,
    rng: u64,
}

impl Armed {
    fn new(rule: Rule) -> Self {
        let rng = match rule.when {
            When::Chance { seed, .. } => seed,
            _ => 0,
        };
        Self { rule, seen: 0, rng }
    }

    /// Counts one call of the rule's operations; whether it strikes.
    fn strikes(&mut self) -> bool {
        self.seen += 1;
        match self.rule.when {
            When::Always => true,
            When::Next(n) => self.seen <= n,
            When::Every(k) => k > 0 && self.seen.is_multiple_of(k),
            When::Chance { p, .. } => unit_interval(splitmix64(&mut self.rng)) < p,
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood): a tiny, good-enough generator that
/// keeps plans reproducible without another dependency.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `bits` as a number in `[0, 1)`.
fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Default)]
struct Plan {
    rules: Vec<Armed>,
    calls: u64,
    /// Faults injected so far, by operation.
    injected: BTreeMap<String, u64>,
}

/// A fault plan: [`Rule`]s consulted in order for every call of the ports
/// it is given to, the first that strikes deciding the call's fate.
///
/// Clones share the plan, so a test keeps one to change the rules while
/// the code under test runs ([`Faults::set`], [`Faults::clear`]) and to
/// read how many faults fired ([`Faults::injected`]). The empty plan
/// (`Faults::default()`) passes every call through.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Plan>>);

impl Faults {
    /// A plan of one rule.
    pub fn new(rule: Rule) -> Self {
        let faults = Self::default();
        faults.add(rule);
        faults
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // A panicking test thread must not poison the plan for the others:
        // every critical section leaves it consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `rule` after the rules already in the plan.
    pub fn add(&self, rule: Rule) {
        self.plan().rules.push(Armed::new(rule));
    }

    /// Replaces every rule with `rule` (its calls counted afresh).
    pub fn set(&self, rule: Rule) {
        self.plan().rules = vec![Armed::new(rule)];
    }

    /// Removes every rule: from now on every call passes through. The
    /// counts of calls and injected faults are kept.
    pub fn clear(&self) {
        self.plan().rules.clear();
    }

    /// How many calls the plan has decided, faulted or not.
    pub fn calls(&self) -> u64 {
        self.plan().calls
    }

    /// How many faults it injected, of every kind (slow calls included).
    pub fn injected(&self) -> u64 {
        self.plan().injected.values().sum()
    }

    /// How many faults it injected into `op` (an operation or a port, as
    /// in [`Rule::on`]).
    pub fn injected_on(&self, op: &str) -> u64 {
        self.plan()
            .injected
            .iter()
            .filter(|(name, _)| op_matches(op, name))
            .map(|(_, n)| n)
            .sum()
    }

    /// Decides the fate of one call of `op` and counts it: `None` passes it
    /// through. [`Faulty`] calls it; a hand-written decorator of another
    /// port can too.
    pub fn decide(&self, op: &str) -> Option<Fault> {
        let mut plan = self.plan();
        plan.calls += 1;
        let fault = plan
            .rules
            .iter_mut()
            .filter(|armed| armed.rule.applies_to(op))
            .find_map(|armed| armed.strikes().then_some(armed.rule.fault))?;
        *plan.injected.entry(op.to_owned()).or_default() += 1;
        Some(fault)
    }
}

/// A port that throttles, fails or is slow when its [`Faults`] plan says so,
/// and otherwise is the port it wraps.
///
/// It implements every storage port its inner port does, for a concrete
/// adapter (`Faulty<MemoryArchive>`, `Faulty<DynamoDbStore>`) and for a
/// trait object (`Faulty<dyn MessageArchive>`). The operations a [`Rule`]
/// can be narrowed to are the port's role and the method:
///
/// | port | operations |
/// |---|---|
/// | [`MessageArchive`] | `archive.put`, `archive.put_reply`, `archive.get`, `archive.history`, `archive.purge_expired` |
/// | [`IdempotencyStore`] | `dedup.begin`, `dedup.complete`, `dedup.release` |
/// | [`Counters`] | `counters.add_once`, `counters.add_once_by`, `counters.get` |
/// | [`EventSink`] | `events.emit` |
/// | [`EventLog`] | `event_log.record`, `event_log.get` |
/// | [`ConversationStore`] | `conversations.get`, `conversations.compare_and_set` |
/// | [`UserData`] | `user_data.export`, `user_data.erase` |
/// | [`MessageCommit`] | `commit.commit` |
pub struct Faulty<P: ?Sized> {
    inner: Arc<P>,
    faults: Faults,
}

impl<P: ?Sized> Faulty<P> {
    /// `inner`, faulted by `faults` (a clone of the plan the test keeps).
    pub fn new(inner: Arc<P>, faults: Faults) -> Self {
        Self { inner, faults }
    }

    /// The wrapped port, to look behind the faults.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    /// The plan in force.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Runs `call` (the inner port's future, not yet started) as the plan
    /// decides for `op`.
    async fn call<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        match self.faults.decide(op) {
            None => call.await,
            Some(Fault::Throttle) => Err(PortError::Unavailable(format!(
                "{op}: throttled (injected ProvisionedThroughputExceeded)"
            ))),
            Some(Fault::Outage) => Err(PortError::Unavailable(format!("{op}: injected outage"))),
            Some(Fault::AfterSuccess) => {
                call.await?;
                Err(PortError::Unavailable(format!(
                    "{op}: injected timeout after the call was applied"
                )))
            }
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                call.await
            }
        }
    }
}

impl<P: ?Sized> Clone for Faulty<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            faults: self.faults.clone(),
        }
    }
}

impl<P: ?Sized> std::fmt::Debug for Faulty<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faulty")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<P: MessageArchive + ?Sized> MessageArchive for Faulty<P> {
    async fn put(&self, msg: &ArchivedMessage) -> Result<bool, PortError> {
        self.call("archive.put", self.inner.put(msg)).await
    }

    async fn put_reply(&self, reply: &ArchivedReply) -> Result<bool, PortError> {
        self.call("archive.put_reply", self.inner.put_reply(reply))
            .await
    }

    async fn get(
        &self,
        openid: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<ArchivedMessage>, PortError> {
        self.call("archive.get", self.inner.get(openid, key, now))
            .await
    }

    async fn history(
        &self,
        openid: &OpenId,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Archived>, PortError> {
        self.call("archive.history", self.inner.history(openid, limit, now))
            .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, PortError> {
        self.call("archive.purge_expired", self.inner.purge_expired(now))
            .await
    }
}

#[async_trait]
impl<P: IdempotencyStore + ?Sized> IdempotencyStore for Faulty<P> {
    async fn begin(&self, key: &str, now: i64, lease_secs: i64) -> Result<Begin, PortError> {
        self.call("dedup.begin", self.inner.begin(key, now, lease_secs))
            .await
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), PortError> {
        self.call(
            "dedup.complete",
            self.inner.complete(key, result, now, ttl_secs),
        )
        .await
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        self.call("dedup.release", self.inner.release(key)).await
    }
}

#[async_trait]
impl<P: Counters + ?Sized> Counters for Faulty<P> {
    async fn add_once(
        &self,
        once_id: &str,
        keys: &[String],
        marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        self.call(
            "counters.add_once",
            self.inner.add_once(once_id, keys, marker_expires_at),
        )
        .await
    }

    async fn add_once_by(
        &self,
        once_id: &str,
        keys: &[String],
        by: u64,
        marker_expires_at: i64,
    ) -> Result<bool, PortError> {
        self.call(
            "counters.add_once_by",
            self.inner.add_once_by(once_id, keys, by, marker_expires_at),
        )
        .await
    }

    async fn get(&self, key: &str) -> Result<u64, PortError> {
        self.call("counters.get", self.inner.get(key)).await
    }
}

#[async_trait]
impl<P: EventSink + ?Sized> EventSink for Faulty<P> {
    async fn emit(&self, events: &[Event]) -> Result<(), PortError> {
        self.call("events.emit", self.inner.emit(events)).await
    }
}

#[async_trait]
impl<P: EventLog + ?Sized> EventLog for Faulty<P> {
    async fn record(&self, event: &Event, expires_at: i64) -> Result<bool, PortError> {
        self.call("event_log.record", self.inner.record(event, expires_at))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Event>, PortError> {
        self.call("event_log.get", self.inner.get(id)).await
    }
}

#[async_trait]
impl<P: ConversationStore + ?Sized> ConversationStore for Faulty<P> {
    async fn get(&self, openid: &OpenId, now: i64) -> Result<Versioned, PortError> {
        self.call("conversations.get", self.inner.get(openid, now))
            .await
    }

    async fn compare_and_set(
        &self,
        openid: &OpenId,
        expected: u64,
        state: &ConversationState,
        expires_at: i64,
    ) -> Result<bool, PortError> {
        self.call(
            "conversations.compare_and_set",
            self.inner
                .compare_and_set(openid, expected, state, expires_at),
        )
        .await
    }
}

#[async_trait]
impl<P: UserData + ?Sized> UserData for Faulty<P> {
    async fn export(&self, openid: &OpenId, now: i64) -> Result<UserRecord, PortError> {
        self.call("user_data.export", self.inner.export(openid, now))
            .await
    }

    async fn erase(&self, openid: &OpenId) -> Result<Erased, PortError> {
        self.call("user_data.erase", self.inner.erase(openid)).await
    }
}

#[async_trait]
impl<P: MessageCommit + ?Sized> MessageCommit for Faulty<P> {
    async fn commit(&self, writes: &MessageWrites) -> Result<Committed, PortError> {
        self.call("commit.commit", self.inner.commit(writes)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use crate::memory::{
        MemoryArchive, MemoryConversationStore, MemoryCounters, MemoryEventLog, MemoryEventSink,
        MemoryIdempotency,
    };

    fn message(key: &str) -> ArchivedMessage {
        ArchivedMessage {
            key: key.to_owned(),
            openid: "o-1".to_owned(),
            msg_type: "text".to_owned(),
            create_time: 1_700_000_000,
            received_at: 1_700_000_000,
            raw_xml: "<xml/>".to_owned(),
            parsed: serde_json::Value::Null,
            expires_at: 1_800_000_000,
        }
    }

    /// Which of `n` calls of `op` the plan faults, as 0/1 flags.
    fn pattern(faults: &Faults, op: &str, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| u8::from(faults.decide(op).is_some()))
            .collect()
    }

    #[test]
    fn an_empty_plan_passes_every_call_through() {
        let faults = Faults::default();
        assert_eq!(pattern(&faults, "archive.put", 5), [0, 0, 0, 0, 0]);
        assert_eq!(faults.calls(), 5);
        assert_eq!(faults.injected(), 0);
    }

    #[test]
    fn the_next_n_calls_fail_and_then_the_port_works_again() {
        let faults = Faults::new(Rule::new(Fault::Outage, When::Next(2)));
        assert_eq!(pattern(&faults, "dedup.begin", 5), [1, 1, 0, 0, 0]);
        assert_eq!(faults.injected(), 2);
    }

    #[test]
    fn every_kth_call_fails() {
        let faults = Faults::new(Rule::new(Fault::Throttle, When::Every(3)));
        assert_eq!(pattern(&faults, "dedup.begin", 7), [0, 0, 1, 0, 0, 1, 0]);
        let never = Faults::new(Rule::new(Fault::Throttle, When::Every(0)));
        assert_eq!(pattern(&never, "dedup.begin", 3), [0, 0, 0]);
    }

    #[test]
    fn a_seeded_chance_faults_the_same_calls_on_every_run() {
        let plan = || Faults::new(Rule::new(Fault::Outage, When::Chance { p: 0.5, seed: 7 }));
        let first = pattern(&plan(), "events.emit", 64);
        assert_eq!(first, pattern(&plan(), "events.emit", 64));
        let other_seed = Faults::new(Rule::new(Fault::Outage, When::Chance { p: 0.5, seed: 8 }));
        assert_ne!(first, pattern(&other_seed, "events.emit", 64));
    }

    #[test]
    fn a_chance_faults_about_that_share_of_calls() {
        let faults = Faults::new(Rule::new(
            Fault::Outage,
            When::Chance {
                p: 0.25,
                seed: 2026,
            },
        ));
        let hits: u32 = pattern(&faults, "events.emit", 10_000)
            .into_iter()
            .map(u32::from)
            .sum();
        assert!((2_300..2_700).contains(&hits), "{hits} of 10000");
        let never = Faults::new(Rule::new(Fault::Outage, When::Chance { p: 0.0, seed: 1 }));
        assert!(
            pattern(&never, "events.emit", 1_000)
                .iter()
                .all(|f| *f == 0)
        );
        assert_eq!(never.injected(), 0);
    }

    #[test]
    fn a_rule_on_one_operation_or_port_leaves_the_others_alone() {
        let faults = Faults::new(Rule::new(Fault::Outage, When::Always).on("dedup.complete"));
        assert_eq!(faults.decide("dedup.begin"), None);
        assert_eq!(faults.decide("dedup.completed"), None);
        assert_eq!(faults.decide("dedup.complete"), Some(Fault::Outage));
        let port = Faults::new(Rule::new(Fault::Outage, When::Always).on("dedup"));
        assert_eq!(port.decide("dedup.release"), Some(Fault::Outage));
        assert_eq!(port.decide("dedupe.release"), None);
        assert_eq!(port.decide("archive.put"), None);
        assert_eq!(port.injected_on("dedup"), 1);
        assert_eq!(port.injected_on("dedup.release"), 1);
        assert_eq!(port.injected_on("archive"), 0);
    }

    #[test]
    fn the_first_rule_that_strikes_decides_the_call() {
        let faults = Faults::new(Rule::new(Fault::Throttle, When::Every(2)));
        faults.add(Rule::new(Fault::Outage, When::Always));
        let fates: Vec<_> = (0..4).map(|_| faults.decide("archive.put")).collect();
        assert_eq!(
            fates,
            [
                Some(Fault::Outage),
                Some(Fault::Throttle),
                Some(Fault::Outage),
                Some(Fault::Throttle)
            ]
        );
    }

    #[tokio::test]
    async fn a_throttled_call_says_so_and_never_reaches_the_port() {
        let archive = Arc::new(MemoryArchive::default());
        let faulty = Faulty::new(
            archive.clone(),
            Faults::new(Rule::new(Fault::Throttle, When::Next(1))),
        );
        let err = faulty.put(&message("msg:1")).await.expect_err("throttled");
        assert!(matches!(&err, PortError::Unavailable(m) if m.contains("throttled")));
        assert!(err.to_string().contains("archive.put"), "{err}");
        assert!(archive.is_empty(), "nothing was stored");
        assert!(faulty.put(&message("msg:1")).await.expect("then it works"));
    }

    #[tokio::test]
    async fn an_outage_fails_the_call_without_reaching_the_port() {
        let archive = Arc::new(MemoryArchive::default());
        let faulty = Faulty::new(
            archive.clone(),
            Faults::new(Rule::new(Fault::Outage, When::Always)),
        );
        let err = faulty.put(&message("msg:1")).await.expect_err("down");
        assert!(matches!(err, PortError::Unavailable(_)));
        assert!(archive.is_empty());
    }

    #[tokio::test]
    async fn a_failure_after_success_applies_the_write_and_still_reports_an_error() {
        let archive = Arc::new(MemoryArchive::default());
        let faults = Faults::new(Rule::new(Fault::AfterSuccess, When::Next(1)));
        let faulty = Faulty::new(archive.clone(), faults.clone());
        let err = faulty.put(&message("msg:1")).await.expect_err("timed out");
        assert!(matches!(err, PortError::Unavailable(_)));
        assert_eq!(archive.len(), 1, "the write happened");
        assert!(
            !faulty.put(&message("msg:1")).await.expect("retry"),
            "the retry finds it stored"
        );
        assert_eq!(faults.injected_on("archive.put"), 1);
    }

    #[tokio::test]
    async fn a_failure_after_success_passes_on_the_ports_own_error() {
        let store: Arc<dyn ConversationStore> = Arc::new(MemoryConversationStore::default());
        let faulty = Faulty::new(
            store,
            Faults::new(Rule::new(Fault::AfterSuccess, When::Always)),
        );
        let user = OpenId::parse("o-1").expect("openid");
        // The one write every store refuses: the version would overflow.
        let err = faulty
            .compare_and_set(&user, u64::MAX, &ConversationState::default(), 0)
            .await
            .expect_err("refused");
        assert!(matches!(err, PortError::Rejected(_)), "{err}");
    }

    #[tokio::test]
    async fn a_slow_call_is_delayed_and_then_passes_through() {
        let sink = Arc::new(MemoryEventSink::default());
        let faulty = Faulty::new(
            sink.clone(),
            Faults::new(Rule::new(
                Fault::Slow(Duration::from_millis(40)),
                When::Always,
            )),
        );
        let started = std::time::Instant::now();
        let event = Event::reply_sent("msg:1", "o-1", "text", 0);
        faulty
            .emit(std::slice::from_ref(&event))
            .await
            .expect("slow, not failed");
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(sink.take(), [event]);
        assert_eq!(faulty.faults().injected(), 1, "a delay counts as a fault");
    }

    #[tokio::test]
    async fn the_plan_can_change_while_the_port_is_in_use() {
        let faults = Faults::default();
        let faulty: Faulty<dyn IdempotencyStore> =
            Faulty::new(Arc::new(MemoryIdempotency::default()), faults.clone());
        assert_eq!(faulty.begin("a", 0, 8).await.expect("fresh"), Begin::Fresh);
        faults.set(Rule::new(Fault::Outage, When::Always));
        assert!(faulty.begin("b", 0, 8).await.is_err());
        faults.clear();
        assert_eq!(faulty.begin("b", 0, 8).await.expect("fresh"), Begin::Fresh);
        assert_eq!((faults.calls(), faults.injected()), (3, 1));
    }

    #[tokio::test]
    async fn counters_that_time_out_after_applying_still_count_an_event_once() {
        let counters = Arc::new(MemoryCounters::default());
        let faulty = Faulty::new(
            counters.clone(),
            Faults::new(Rule::new(Fault::AfterSuccess, When::Next(1))),
        );
        let event = Event::message_received("msg:1", "o-1", "text", 1_700_000_000, None);
        let tz = jiff::tz::TimeZone::UTC;
        assert!(crate::analytics::apply(&faulty, &event, &tz).await.is_err());
        // The consumer retries (SQS redelivers): already applied.
        assert!(
            !crate::analytics::apply(&faulty, &event, &tz)
                .await
                .expect("retry")
        );
        assert_eq!(counters.get("msgs:day:2023-11-14").await.expect("get"), 1);
    }

    #[tokio::test]
    async fn a_commit_that_times_out_after_writing_leaves_everything_written() {
        let archive = Arc::new(MemoryArchive::default());
        let dedup = Arc::new(MemoryIdempotency::default());
        let sink = Arc::new(MemoryEventSink::default());
        let commit = crate::SequentialCommit {
            archive: archive.clone(),
            conversations: Arc::new(MemoryConversationStore::default()),
            events: sink.clone(),
            dedup: dedup.clone(),
        };
        let faulty = Faulty::new(
            Arc::new(commit),
            Faults::new(Rule::new(Fault::AfterSuccess, When::Always).on("commit")),
        );
        let writes = MessageWrites {
            message: message("msg:1"),
            conversations: Vec::new(),
            events: vec![Event::message_received("msg:1", "o-1", "text", 0, None)],
            dedup_key: "msg:1".to_owned(),
            result: "success".to_owned(),
            result_ttl_secs: 60,
            reply: None,
            now: 1_700_000_000,
            outbox: false,
        };
        assert!(faulty.commit(&writes).await.is_err());
        assert_eq!(archive.len(), 1);
        assert_eq!(sink.take().len(), 1);
        assert_eq!(
            dedup.begin("msg:1", 1_700_000_000, 8).await.expect("begin"),
            Begin::Done("success".to_owned())
        );
    }

    #[tokio::test]
    async fn every_wrapped_port_keeps_its_contract_when_no_fault_fires() {
        let none = Faults::default;
        contract::archive(&Faulty::new(Arc::new(MemoryArchive::default()), none())).await;
        contract::idempotency(&Faulty::new(Arc::new(MemoryIdempotency::default()), none())).await;
        contract::counters(&Faulty::new(Arc::new(MemoryCounters::default()), none())).await;
        contract::event_log(&Faulty::new(Arc::new(MemoryEventLog::default()), none())).await;
        let sink = Arc::new(MemoryEventSink::default());
        contract::event_sink(&Faulty::new(sink.clone(), none()), || async { sink.take() }).await;
        let conversations: Arc<dyn ConversationStore> =
            Arc::new(MemoryConversationStore::default());
        contract::conversation_store(Arc::new(Faulty::new(conversations, none()))).await;
        let store = crate::memory::MemoryUserData::default();
        contract::user_data(
            &Faulty::new(Arc::new(store.clone()), none()),
            &*store.archive,
            &*store.conversations,
            &*store.dedup,
            &*store.events,
        )
        .await;
    }

    #[tokio::test]
    async fn every_wrapped_port_keeps_its_contract_when_calls_are_slow() {
        let slow = || {
            Faults::new(Rule::new(
                Fault::Slow(Duration::from_millis(1)),
                When::Every(3),
            ))
        };
        let archive: Arc<dyn MessageArchive> = Arc::new(MemoryArchive::default());
        contract::archive(&Faulty::new(archive, slow())).await;
        contract::idempotency(&Faulty::new(Arc::new(MemoryIdempotency::default()), slow())).await;
    }
}
