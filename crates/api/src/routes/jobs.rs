//! `GET /api/jobs/{id}/applicants`: the note's example of a protected route ("a company checking
//! how many people applied to its job posting"). Recruiters only.
//!
//! The role is checked before the job is looked up, so a caller without the role learns nothing,
//! not even which job ids exist (403 before 404).

use crate::caller::Auth;
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use serde_json::{Value, json};

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

pub async fn applicants(
    Auth(caller): Auth,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    if !caller.has_role(RECRUITER) {
        return Err(ApiError::InsufficientScope(
            "this route needs the recruiter role".into(),
        ));
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
    Ok(Json(
        json!({ "job_id": job, "applicants": APPLICANTS[job - 1] }),
    ))
}
