//! Batch rules: Jobs finish, CronJobs schedule them.

use chrono::{DateTime, Utc};

use super::context::{Ctx, anchor};
use super::cron::{Schedule, zone_is_utc};
use super::objects::{CronJob, Job, JobStatus, find_condition};
use super::verdict::{Finding, FindingCode, Health, Persistence, Phase, Severity};
use super::workload::{WorkloadVerdict, is_true};

/// Whether the Job controller has written anything: a condition, a start, a count.
fn job_observed(st: &JobStatus) -> bool {
    let counts = [st.active, st.succeeded, st.failed];
    !st.conditions.is_empty()
        || st.start_time.is_some()
        || st.completion_time.is_some()
        || counts.iter().any(|c| c.is_some_and(|n| n != 0))
}

/// Whether a Job has finished, and how.
pub(crate) fn job_outcome(job: &Job) -> Option<(bool, Option<DateTime<Utc>>)> {
    let conditions = &job.status.conditions;
    let finished_at =
        |type_| find_condition(conditions, type_).and_then(|c| c.last_transition_time);
    if is_true(conditions, "Failed") || is_true(conditions, "FailureTarget") {
        return Some((true, finished_at("Failed").or(finished_at("FailureTarget"))));
    }
    if is_true(conditions, "Complete") || is_true(conditions, "SuccessCriteriaMet") {
        return Some((
            false,
            job.status.completion_time.or(finished_at("Complete")),
        ));
    }
    None
}

/// Job rules.
pub(crate) fn assess_job(job: &Job, ctx: &Ctx, out: &mut Vec<Finding>) -> WorkloadVerdict {
    let st = &job.status;
    if !job_observed(st) {
        return WorkloadVerdict::not_observed("Job", &job.metadata, ctx, out);
    }
    let completions = job.spec.completions.unwrap_or(1);
    let succeeded = st.succeeded.unwrap_or(0);
    let active = st.active.unwrap_or(0);
    let mut v = WorkloadVerdict::new(
        Phase::Progressing,
        Some(format!(
            "{succeeded}/{completions} succeeded, {active} active, {} failed",
            st.failed.unwrap_or(0)
        )),
    );
    match job_outcome(job) {
        // Rule: Failed=True (backoff limit, active deadline): the Job gave up.
        Some((true, since)) => {
            let cond = find_condition(&st.conditions, "Failed")
                .or_else(|| find_condition(&st.conditions, "FailureTarget"));
            out.push(
                ctx.finding(
                    FindingCode::JobFailed,
                    Severity::Failing,
                    Persistence::Terminal,
                    "Job",
                    &job.metadata,
                    cond.and_then(|c| c.reason.clone())
                        .unwrap_or_else(|| "Failed".into()),
                    cond.and_then(|c| c.message.as_deref()),
                )
                .rule("job.failed")
                .anchored(anchor("Failed.lastTransitionTime", since)),
            );
            v.health = Health::Failing;
            v.phase = Phase::Completed;
            v.failed = true;
        }
        // Rule: Complete=True: done; failed pods along the way were retried away.
        Some((false, _)) => {
            v.phase = Phase::Completed;
            v.shields = true;
            v.supersedes_failed = true;
        }
        None => {
            v.shields = true;
            if job.spec.suspend == Some(true) || is_true(&st.conditions, "Suspended") {
                // Rule: suspended on purpose.
                v.phase = Phase::Suspended;
            } else if active == 0 && succeeded >= completions && st.conditions.is_empty() {
                // Recordings from before Job conditions: the counts say it is done.
                v.phase = Phase::Completed;
                v.supersedes_failed = true;
            }
        }
    }
    v
}

/// CronJob rules. `last_run` is the outcome of its newest finished Job among the given
/// resources (`Some(true)` = failed), when there is one.
pub(crate) fn assess_cronjob(
    cj: &CronJob,
    last_run: Option<bool>,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let st = &cj.status;
    let mut v = WorkloadVerdict::new(Phase::Stable, None);
    // A CronJob's runs are retried by the next schedule: its Jobs' failures degrade, never fail.
    v.shields = true;
    v.supersedes_failed = last_run == Some(false);
    // Rule: suspended on purpose.
    if cj.spec.suspend == Some(true) {
        v.phase = Phase::Suspended;
        return v;
    }
    // Without its Jobs, the status still tells: the last schedule after the last success,
    // with nothing active, means the last run did not succeed.
    let inferred_failure = || {
        st.active.is_empty()
            && matches!((st.last_schedule_time, st.last_successful_time),
                (Some(scheduled), Some(succeeded)) if scheduled > succeeded)
    };
    // Rule: the last finished Job failed.
    if last_run.unwrap_or_else(inferred_failure) {
        out.push(
            ctx.finding(
                FindingCode::CronJobLastRunFailed,
                Severity::Degraded,
                Persistence::Transient,
                "CronJob",
                &cj.metadata,
                "LastRunFailed".to_owned(),
                Some("the most recent finished run failed"),
            )
            .rule("cronjob.last_run_failed")
            .anchored(anchor("status.lastScheduleTime", st.last_schedule_time)),
        );
        v.health = Health::Degraded;
    }
    if st.active.is_empty()
        && let Some(missed) = missed_run(cj, ctx)
    {
        // Rule: a run the schedule called for has not started (the controller was down,
        // too many starts were missed, the starting deadline passed) and nothing runs.
        let message = format!(
            "a run was due at {} and none has started since {}",
            missed.to_rfc3339(),
            st.last_schedule_time
                .map_or_else(|| "creation".to_owned(), |t| t.to_rfc3339())
        );
        out.push(
            ctx.finding(
                FindingCode::MissedSchedule,
                Severity::Degraded,
                Persistence::Transient,
                "CronJob",
                &cj.metadata,
                "MissedSchedule".to_owned(),
                Some(&message),
            )
            .rule("cronjob.missed_schedule")
            .anchored(anchor("the missed scheduled time", Some(missed))),
        );
        v.health = Health::Degraded;
    }
    v
}

/// The first scheduled time after the last run (or creation) that is more than
/// `start_grace` (or the starting deadline, when longer) in the past, if any.
fn missed_run(cj: &CronJob, ctx: &Ctx) -> Option<DateTime<Utc>> {
    if !zone_is_utc(cj.spec.time_zone.as_deref()) {
        return None;
    }
    let schedule = Schedule::parse(cj.spec.schedule.as_deref()?)?;
    let since = cj
        .status
        .last_schedule_time
        .or(cj.metadata.creation_timestamp)?;
    // A hostile deadline (beyond what a duration holds) means "never too late".
    let deadline = match cj.spec.starting_deadline_seconds {
        Some(seconds) => chrono::Duration::try_seconds(seconds)?,
        None => chrono::Duration::zero(),
    }
    .max(ctx.policy.start_grace);
    schedule.next_after(since, ctx.now.checked_sub_signed(deadline)?)
}
