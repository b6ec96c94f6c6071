//! The attempt loop: try targets in strategy order, retrying on the same
//! target (with backoff and jitter, or the provider's `retry-after`) while
//! the retry policy and the retry budget allow, falling back to the next
//! target on the conditions the target lists, and skipping targets whose
//! circuit is open. Every attempt is recorded for the request log.
//!
//! Fallback is possible only before the first byte reaches the client: a
//! provider call returns once the response (for streams, its first event)
//! is in hand, and nothing after that point comes back here.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::{ModelRef, Target};
use super::strategy::order;
use super::{FallbackPolicy, Plan, PlanTarget, TargetKind, VirtualModel};
use crate::error::{GatewayError, UpstreamError};
use crate::identity::Principal;
use crate::providers::{Call, UpstreamReply};
use crate::wire::Operation;
use crate::wire::json::RawObject;

/// The longest `retry-after` a retry will wait; longer means fall back instead.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; the response went to the client.
    Ok,
    /// Failed; tried the same target again.
    Retried,
    /// Failed; moved on to the next target.
    FellBack,
    /// Not tried: its circuit is open.
    SkippedOpen,
    /// Failed with an error that no policy handles; returned to the client.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retried => "retried",
            Outcome::FellBack => "fell_back",
            Outcome::SkippedOpen => "skipped_open_circuit",
            Outcome::Failed => "failed",
        }
    }
}

/// One try (or skip) of one target.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub target: Arc<str>,
    pub outcome: Outcome,
    /// Upstream status, when there was one.
    pub status: Option<u16>,
    pub latency: Duration,
    /// Why it moved on (the error), empty on success.
    pub reason: String,
    /// When it ended (it started `latency` earlier).
    pub ended: Instant,
}

/// What the attempt loop leaves for the response headers and the log:
/// every attempt, and where the time went.
#[derive(Debug, Default)]
pub struct Trail {
    pub attempts: Vec<Attempt>,
    /// Time spent waiting on upstreams (attempts, not backoff sleeps);
    /// `None` when nothing was sent.
    pub upstream_time: Option<Duration>,
    /// Time spent sleeping between retries.
    pub backoff_time: Duration,
}

/// What the loop needs from the request.
pub struct Exec<'a> {
    pub op: Operation,
    pub requested: &'a str,
    pub principal: Option<&'a Principal>,
    pub metadata: &'a BTreeMap<String, String>,
    pub request: &'a RawObject<'a>,
    /// The client's own request on `/v1/messages`.
    pub native: Option<&'a crate::providers::Native<'a>>,
    pub stream: bool,
    /// Ask a stream to report usage (for settlement) even if the client did not.
    pub want_usage: bool,
    pub max_response_size: usize,
    /// Where attempts and timings are recorded, owned by the caller's context.
    pub trail: &'a mut Trail,
    /// The prompt template the request used: an attempt on a provider its
    /// version overrides sends that rendering instead.
    pub prompt: Option<&'a crate::prompts::Applied>,
}

pub type Answer = (UpstreamReply, Target);

/// Calls a model: one recorded attempt for a physical model, the strategy
/// loop over `plan` (the route stage's choice) for a virtual one.
pub async fn run(model: &ModelRef, plan: Option<&Plan>, x: &mut Exec<'_>) -> Result<Answer, GatewayError> {
    match model {
        ModelRef::Physical(target) => {
            let started = Instant::now();
            let r = call_physical(x, target, None).await;
            let (outcome, status, reason) = match &r {
                Ok(_) => (Outcome::Ok, Some(200), String::new()),
                Err(e) => (Outcome::Failed, e.status(), e.to_string()),
            };
            x.trail.attempts.push(Attempt {
                ended: Instant::now(),
                target: target.canonical.clone(),
                outcome,
                status,
                latency: started.elapsed(),
                reason,
            });
            r.map(|reply| (reply, target.clone())).map_err(GatewayError::from)
        }
        ModelRef::Virtual(vm) => run_virtual(vm, plan, x).await,
    }
}

/// One call to one physical target.
pub async fn call_physical(
    x: &mut Exec<'_>,
    target: &Target,
    pt: Option<&PlanTarget>,
) -> Result<UpstreamReply, UpstreamError> {
    let started = Instant::now();
    // Parsed again only for a request whose template overrides this provider.
    let swapped = x.prompt.and_then(|p| p.for_provider(&target.provider.name, x.request));
    let swapped = swapped.as_deref().and_then(|b| RawObject::parse(b).ok());
    let result = target
        .provider
        .call(Call {
            op: x.op,
            upstream_model: &target.upstream_model,
            request: swapped.as_ref().unwrap_or(x.request),
            stream: x.stream,
            want_usage: x.want_usage,
            max_response_size: x.max_response_size,
            overrides: pt.map_or(&[][..], |p| &p.overrides[..]),
            timeouts: pt.and_then(|p| p.timeouts),
            native: x.native,
        })
        .await;
    *x.trail.upstream_time.get_or_insert_default() += started.elapsed();
    result
}

/// Runs a virtual model in strategy order over `plan` (the route stage's
/// choice), or over the plan its own routes pick for a nested model.
pub fn run_virtual<'a, 'x: 'a>(
    vm: &'a VirtualModel,
    plan: Option<&'a Plan>,
    x: &'a mut Exec<'x>,
) -> Pin<Box<dyn Future<Output = Result<Answer, GatewayError>> + Send + 'a>> {
    Box::pin(async move {
        vm.budget.deposit();
        let plan = plan.unwrap_or_else(|| vm.plan_for(x.requested, x.principal, x.metadata));
        let mut last: Option<UpstreamError> = None;
        for t in order(plan) {
            if !t.health.admit() {
                x.trail.attempts.push(attempt(t, Outcome::SkippedOpen, None, Duration::ZERO, "circuit open".into()));
                continue;
            }
            let mut tries = 0u32;
            loop {
                tries += 1;
                let started = Instant::now();
                let result = match &t.kind {
                    TargetKind::Physical(target) => {
                        call_physical(x, target, Some(t)).await.map(|r| (r, target.clone()))
                    }
                    TargetKind::Virtual(inner) => match run_virtual(inner, None, x).await {
                        Ok(a) => Ok(a),
                        Err(GatewayError::AllTargetsFailed { last, .. }) => Err(*last),
                        // Every target of the nested model is out of rotation:
                        // nothing was tried, so move on like a skipped circuit.
                        Err(GatewayError::NoHealthyTarget(_)) => {
                            x.trail.attempts.push(attempt(
                                t,
                                Outcome::SkippedOpen,
                                None,
                                Duration::ZERO,
                                "no healthy target".into(),
                            ));
                            break;
                        }
                        Err(other) => return Err(other),
                    },
                };
                let took = started.elapsed();
                let err = match result {
                    Ok(answer) => {
                        if matches!(t.kind, TargetKind::Physical(_)) {
                            t.health.success(took);
                        }
                        x.trail.attempts.push(attempt(t, Outcome::Ok, Some(200), took, String::new()));
                        return Ok(answer);
                    }
                    Err(e) => e,
                };
                let status = err.status();
                let retry_after = retry_after_of(&err);
                if matches!(t.kind, TargetKind::Physical(_)) {
                    if hurts_health(&err) {
                        t.health.failure(&vm.breaker, retry_after);
                    } else {
                        t.health.neutral();
                    }
                }
                let worth_it = match &err {
                    UpstreamError::Timeout { .. } => t.retry.on_timeout,
                    UpstreamError::Connect { .. } => t.retry.on_connect,
                    _ => status.is_some_and(|s| t.retry.on_status.contains(&s)),
                };
                let retryable = worth_it
                    && tries < t.retry.attempts
                    && retry_after.is_none_or(|ra| ra <= MAX_RETRY_WAIT)
                    && t.health.admit_retry()
                    && vm.budget.try_withdraw();
                if retryable {
                    let wait = retry_after.unwrap_or_else(|| jitter(t.retry.backoff, tries));
                    x.trail.attempts.push(attempt(t, Outcome::Retried, status, took, err.to_string()));
                    tokio::time::sleep(wait).await;
                    x.trail.backoff_time += wait;
                    continue;
                }
                if falls_back(&t.fallback, &err) {
                    x.trail.attempts.push(attempt(t, Outcome::FellBack, status, took, err.to_string()));
                    last = Some(err);
                    break;
                }
                x.trail.attempts.push(attempt(t, Outcome::Failed, status, took, err.to_string()));
                return Err(err.into());
            }
        }
        Err(match last {
            Some(last) => GatewayError::AllTargetsFailed { virtual_model: vm.name.clone(), last: Box::new(last) },
            None => GatewayError::NoHealthyTarget(vm.name.clone()),
        })
    })
}

fn attempt(t: &PlanTarget, outcome: Outcome, status: Option<u16>, latency: Duration, reason: String) -> Attempt {
    Attempt { target: t.label.clone(), outcome, status, latency, reason, ended: Instant::now() }
}

fn retry_after_of(e: &UpstreamError) -> Option<Duration> {
    let UpstreamError::Status { retry_after: Some(v), .. } = e else { return None };
    let secs: f64 = v.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Failures that say something about the target's health (not the request's).
fn hurts_health(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
        UpstreamError::Timeout { .. } | UpstreamError::Connect { .. } | UpstreamError::Broken { .. } => true,
        UpstreamError::Untranslatable { .. } => false,
    }
}

fn falls_back(p: &FallbackPolicy, e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Status { status, .. } => p.statuses.contains(status),
        UpstreamError::Timeout { .. } => p.timeout,
        UpstreamError::Connect { .. } | UpstreamError::Broken { .. } => p.connect,
        // The request does not fit this target's wire format; another target may take it.
        UpstreamError::Untranslatable { .. } => true,
    }
}

/// Full jitter: a random wait up to backoff × 2^(try−1), so retries from
/// many clients spread out instead of arriving together.
fn jitter(backoff: Duration, tries: u32) -> Duration {
    let cap = backoff.saturating_mul(1u32 << tries.saturating_sub(1).min(10));
    let cap_us = cap.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(fastrand::u64(0..=cap_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_exponential_cap() {
        for tries in 1..5 {
            for _ in 0..100 {
                assert!(jitter(Duration::from_millis(100), tries) <= Duration::from_millis(100 << (tries - 1)));
            }
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let e = |v: &str| UpstreamError::Status {
            provider: "p".into(),
            status: 429,
            message: String::new(),
            retry_after: http::HeaderValue::from_str(v).ok(),
        };
        assert_eq!(retry_after_of(&e("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_of(&e("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after_of(&e("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
