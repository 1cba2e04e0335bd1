//! Container rules: waiting reasons, terminations, OOM kills and restarts, for regular,
//! init and sidecar containers alike (init containers' displays get an `Init:` prefix).

use super::context::{Ctx, anchor};
use super::objects::{ContainerStatus, Pod};
use super::verdict::{
    Anchor, ContainerRef, ContainerRole, Finding, FindingCode, Health, Persistence, Severity,
};

/// Every container status of the pod with its role (init, sidecar or main).
pub(super) fn containers(pod: &Pod) -> impl Iterator<Item = (&ContainerStatus, ContainerRole)> {
    let init = pod.status.init_container_statuses.iter().map(|cs| {
        let role = if pod.spec.is_sidecar(&cs.name) {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        };
        (cs, role)
    });
    let main = pod
        .status
        .container_statuses
        .iter()
        .map(|cs| (cs, ContainerRole::Main));
    init.chain(main)
}

pub(super) struct ContainerCtx<'a> {
    pub pod: &'a Pod,
    pub role: ContainerRole,
    /// When the pod started (anchor of start and pull graces).
    pub started: Anchor,
    /// Whether the kubelet restarts this container when it fails.
    pub restarts: bool,
    /// Whether the kubelet restarts this container when it exits 0 (`restartPolicy:
    /// Always` for regular containers, native sidecars): such an exit is a restart.
    pub restarts_finished: bool,
    /// Suppress "slow start" findings (the pod waits on an init container).
    pub quiet_start: bool,
}

pub(super) struct ContainerVerdict {
    pub health: Health,
    pub progressing: bool,
}

/// Waiting reasons that do not clear without a change to the spec or the node.
fn terminal_waiting(reason: &str) -> Option<FindingCode> {
    match reason {
        "InvalidImageName" => Some(FindingCode::InvalidImageName),
        "ErrImageNeverPull" => Some(FindingCode::ErrImageNeverPull),
        "CreateContainerError" => Some(FindingCode::CreateContainerError),
        "RunContainerError" => Some(FindingCode::RunContainerError),
        _ => None,
    }
}

/// `last exit: <reason> (exit code N): <message>` for the container's previous run.
fn last_exit(cs: &ContainerStatus) -> Option<String> {
    cs.last_state.terminated.as_ref().map(|t| {
        let why = t.reason.as_deref().unwrap_or("exited");
        format!(
            "last exit: {why} (exit code {}){}",
            t.exit_code,
            t.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    })
}

pub(super) fn assess_container(
    cs: &ContainerStatus,
    pc: &ContainerCtx,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> ContainerVerdict {
    let prefix = if pc.role == ContainerRole::Init {
        "Init:"
    } else {
        ""
    };
    let mut verdict = ContainerVerdict {
        health: Health::Healthy,
        progressing: false,
    };
    let mut report = |code,
                      severity: Severity,
                      persistence,
                      display: &str,
                      message: Option<&str>,
                      rule: &'static str,
                      since: Anchor| {
        let finding = ctx
            .finding(
                code,
                severity,
                persistence,
                "Pod",
                &pc.pod.metadata,
                format!("{prefix}{display}"),
                message,
            )
            .container(ContainerRef {
                name: cs.name.clone(),
                role: pc.role,
            })
            .count(cs.restart_count)
            .rule(rule)
            .anchored(since);
        out.push(finding);
        severity.health()
    };
    // A restarted container starts a new episode when its previous run ended.
    let previous_end = cs
        .last_state
        .terminated
        .as_ref()
        .and_then(|t| t.finished_at);
    let episode = if previous_end.is_some() {
        anchor("lastState.terminated.finishedAt", previous_end)
    } else {
        pc.started
    };
    // The last time the container (re)started or stopped: what "recent" restarts mean.
    let restarted = cs
        .state
        .running
        .as_ref()
        .and_then(|r| r.started_at)
        .map(|at| anchor("state.running.startedAt", Some(at)))
        .or_else(|| {
            cs.state
                .terminated
                .as_ref()
                .and_then(|t| t.finished_at)
                .map(|at| anchor("state.terminated.finishedAt", Some(at)))
        })
        .unwrap_or(anchor("lastState.terminated.finishedAt", previous_end));

    if let Some(waiting) = &cs.state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref();
        verdict.progressing = true;
        if let Some(code) = terminal_waiting(reason) {
            // Rule: the spec or node makes this container impossible to start.
            verdict.health = report(
                code,
                Severity::Failing,
                Persistence::Terminal,
                reason,
                message,
                "container.waiting.terminal",
                episode,
            );
        } else if reason == "CreateContainerConfigError" {
            // Rule: a missing ConfigMap/Secret may still be created by another
            // controller; within config_grace that is progress (an info finding), after
            // it the container is failing.
            let (severity, persistence) = if ctx.past_anchor(episode, ctx.policy.config_grace) {
                (Severity::Failing, Persistence::Terminal)
            } else {
                (Severity::Info, Persistence::Transient)
            };
            verdict.health = report(
                FindingCode::CreateContainerConfigError,
                severity,
                persistence,
                reason,
                message,
                "container.waiting.config",
                episode,
            );
        } else if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            // Rule: the kubelet alternates between these two during one pull episode;
            // both are judged alike (degraded within pull_grace, failing after) so the
            // verdict does not flap with the kubelet's back-off.
            let code = if reason == "ErrImagePull" {
                FindingCode::ErrImagePull
            } else {
                FindingCode::ImagePullBackOff
            };
            let severity = if ctx.past_anchor(episode, ctx.policy.pull_grace) {
                Severity::Failing
            } else {
                Severity::Degraded
            };
            verdict.health = report(
                code,
                severity,
                Persistence::Transient,
                reason,
                message,
                "container.waiting.pull",
                episode,
            );
        } else if reason == "CrashLoopBackOff" {
            // Rule: the container keeps exiting (with any code, 0 included under
            // restartPolicy Always); the kubelet waits longer each time.
            let last = last_exit(cs);
            let message = last.as_deref().or(message);
            verdict.health = report(
                FindingCode::CrashLoopBackOff,
                Severity::Failing,
                Persistence::Transient,
                reason,
                message,
                "container.waiting.crashloop",
                anchor("lastState.terminated.finishedAt", previous_end),
            );
            // The typed cause, when the crashes are OOM kills: users filter on it.
            if let Some(t) = cs.last_state.terminated.as_ref().filter(|t| {
                t.reason.as_deref() == Some("OOMKilled")
                    && ctx.recent(t.finished_at, ctx.policy.recent_window)
            }) {
                report(
                    FindingCode::OomKilled,
                    Severity::Degraded,
                    Persistence::Transient,
                    "OOMKilled",
                    Some("the container's last run was OOM-killed"),
                    "container.oom_recent",
                    anchor("lastState.terminated.finishedAt", t.finished_at),
                );
            }
            return verdict;
        } else if !pc.quiet_start && ctx.past_anchor(episode, ctx.policy.start_grace) {
            // Rule: creating/initializing is progress, until start_grace has passed.
            let code = match reason {
                "ContainerCreating" => FindingCode::ContainerCreating,
                "PodInitializing" => FindingCode::PodInitializing,
                _ => FindingCode::ContainerWaiting,
            };
            let display = if reason.is_empty() { "Waiting" } else { reason };
            verdict.health = report(
                code,
                Severity::Degraded,
                Persistence::Transient,
                display,
                message,
                "container.waiting.slow_start",
                episode,
            );
        }
    } else if let Some(term) = &cs.state.terminated {
        let oom = term.reason.as_deref() == Some("OOMKilled");
        let finished = anchor("state.terminated.finishedAt", term.finished_at);
        if term.exit_code == 0 && !oom {
            // Done: an init container that finished, or a regular container under
            // OnFailure. Under restartPolicy Always the kubelet starts it again, so an
            // exit 0 is a restart like any other (judged by the restart rule below).
            verdict.progressing = pc.restarts_finished;
            if !pc.restarts_finished {
                return verdict;
            }
        } else {
            let display = match (&term.reason, term.signal) {
                (Some(reason), _) => reason.clone(),
                (None, Some(signal)) => format!("Signal:{signal}"),
                (None, None) => format!("ExitCode:{}", term.exit_code),
            };
            let (code, severity, persistence, rule) = if oom {
                // Rule: killed for exceeding the memory limit: it will happen again.
                let persistence = if pc.restarts {
                    Persistence::Transient
                } else {
                    Persistence::Terminal
                };
                (
                    FindingCode::OomKilled,
                    Severity::Failing,
                    persistence,
                    "container.terminated.oom",
                )
            } else if !pc.restarts {
                // Rule: a non-zero exit under restartPolicy Never is final.
                (
                    FindingCode::ContainerError,
                    Severity::Failing,
                    Persistence::Terminal,
                    "container.terminated.final",
                )
            } else {
                // The kubelet restarts it; degraded until it turns into a crash loop.
                (
                    FindingCode::ContainerError,
                    Severity::Degraded,
                    Persistence::Transient,
                    "container.terminated.restarting",
                )
            };
            verdict.health = report(
                code,
                severity,
                persistence,
                &display,
                term.message.as_deref(),
                rule,
                finished,
            );
            verdict.progressing = pc.restarts;
            return verdict;
        }
    } else if cs.state.running.is_none() {
        // No state reported yet: the container has not been created.
        verdict.progressing = true;
        return verdict;
    } else if let Some(previous) = cs
        .last_state
        .terminated
        .as_ref()
        .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
        .filter(|t| ctx.recent(t.finished_at, ctx.policy.recent_window))
    {
        // Rule: it runs again, but was OOM-killed recently: at risk of the next kill.
        verdict.health = report(
            FindingCode::OomKilled,
            Severity::Degraded,
            Persistence::Transient,
            "OOMKilled",
            Some("container was OOM-killed recently and restarted"),
            "container.oom_recent",
            anchor("lastState.terminated.finishedAt", previous.finished_at),
        );
        return verdict;
    }

    // Rule: restarted often and recently: unstable even if up right now. Counts every
    // state (running, waiting to start again, just exited 0 under Always).
    if verdict.health < Health::Degraded
        && cs.restart_count >= ctx.policy.restart_threshold
        && ctx.recent(restarted.at, ctx.policy.recent_window)
    {
        let last = cs
            .state
            .terminated
            .as_ref()
            .or(cs.last_state.terminated.as_ref());
        let message = last.map(|t| {
            format!(
                "{} restarts; last exit: {} (exit code {})",
                cs.restart_count,
                t.reason.as_deref().unwrap_or("exited"),
                t.exit_code
            )
        });
        verdict.health = report(
            FindingCode::RestartingFrequently,
            Severity::Degraded,
            Persistence::Transient,
            "RestartingFrequently",
            message.as_deref(),
            "container.restarting_frequently",
            restarted,
        );
    }
    verdict
}
