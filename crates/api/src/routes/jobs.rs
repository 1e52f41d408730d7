//! `GET /api/jobs/{id}/applicants`: the note's example of a protected route ("a company checking
//! how many people applied to its job posting"). Recruiters only.
//!
//! The role is checked before the job is looked up, so a caller without the role learns nothing,
//! not even which job ids exist (403 before 404).

use crate::caller::Auth;
use crate::settings::Mode;
use crate::state::ReplicaState;
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;

const RECRUITER: &str = "recruiter";

/// A small fixed dataset: jobs 1 to 10 and who applied.
const APPLICANTS: [&[&str]; 10] = [
    &["ada", "grace", "linus"],
    &["ken", "dennis"],
    &["barbara", "margaret", "edsger", "tony"],
    &[],
    &["donald"],
    &["frances", "john", "radia"],
    &["guido", "larry"],
    &["yukihiro", "bjarne", "james", "anders", "rob"],
    &["sophie"],
    &["leslie", "niklaus"],
];

/// Who applied to one job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Applicants {
    #[schema(minimum = 1, maximum = 10)]
    pub job_id: usize,
    pub applicants: &'static [&'static str],
}

auth_core::errors!(
    /// The role is checked before the job is looked up.
    JobErrors:
    ApiError::InsufficientScope { description: "this route needs the recruiter role".into(), bearer: true },
    ApiError::NotFound("no such job".into()),
);

/// Who applied to job `id` (jobs 1 to 10 exist). Recruiters only.
#[utoipa::path(
    get,
    path = "/jobs/{id}/applicants",
    operation_id = "applicants",
    params(("id" = u8, Path, minimum = 1, maximum = 10, example = 1,
        description = "The job: 1 to 10 exist; any other id, number or not, is 404 `not_found`.")),
    security(("caller" = [])),
    responses((status = 200, description = "The job's applicants.", body = Applicants), JobErrors),
)]
pub async fn applicants(
    State(state): State<ReplicaState>,
    Auth(caller): Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Applicants>, ApiError> {
    if !caller.has_role(RECRUITER) {
        return Err(ApiError::InsufficientScope {
            description: "this route needs the recruiter role".into(),
            // A bearer caller gets RFC 6750's insufficient_scope challenge; a cookie caller none.
            bearer: state.mode() == Mode::Jwt,
        });
    }
    // An id that is not even valid UTF-8 names no job either.
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound("no such job".into()));
    };
    let job = id
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=APPLICANTS.len()).contains(n))
        .ok_or_else(|| ApiError::NotFound("no such job".into()))?;
    Ok(Json(Applicants {
        job_id: job,
        applicants: APPLICANTS[job - 1],
    }))
}
