//! Expectations on responses. Each returns a [`Step`]: `Err` ends the case with a
//! failure naming the request, what was expected and what came back.

use crate::report::Outcome;
use imgflow::client::{RawResponse, CONTENT_DIGEST_HEADER};
use imgflow::oci::Digest;
use std::fmt::Display;

/// The result of a step of a case: `Err` carries the case's final outcome
/// ([`Outcome::Fail`] or [`Outcome::Skip`]).
pub type Step<T = ()> = Result<T, Outcome>;

/// A failure of `resp`'s request: `expected` vs `actual`.
pub fn mismatch(resp: &RawResponse, expected: impl Display, actual: impl Display) -> Outcome {
    Outcome::Fail(format!(
        "request: {} {}; expected: {expected}; actual: {actual}",
        resp.method, resp.url
    ))
}

/// A failure unrelated to one response (setup, a value computed from several).
pub fn fail(reason: impl Into<String>) -> Outcome {
    Outcome::Fail(reason.into())
}

/// A skip with `reason`.
pub fn skip(reason: impl Into<String>) -> Outcome {
    Outcome::Skip(reason.into())
}

/// Status and, when there is one, the body of `resp`, for messages.
pub fn actual(resp: &RawResponse) -> String {
    let body = resp.body_text();
    if body.trim().is_empty() {
        resp.status.to_string()
    } else {
        format!("{}, body: {}", resp.status, body.trim())
    }
}

/// The status must be one of `want`.
pub fn status(resp: &RawResponse, want: &[u16]) -> Step {
    if want.contains(&resp.status.as_u16()) {
        return Ok(());
    }
    let expected = want
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    Err(mismatch(resp, format!("status {expected}"), actual(resp)))
}

/// The header must be present and non-empty; returns its value.
pub fn header(resp: &RawResponse, name: &str) -> Step<String> {
    match resp.header(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(mismatch(
            resp,
            format!("a {name} header"),
            format!(
                "{} without {name}; headers: {:?}",
                resp.status, resp.headers
            ),
        )),
    }
}

/// The header must equal `want`.
pub fn header_eq(resp: &RawResponse, name: &str, want: &str) -> Step {
    let got = header(resp, name)?;
    if got == want {
        Ok(())
    } else {
        Err(mismatch(
            resp,
            format!("{name}: {want}"),
            format!("{name}: {got}"),
        ))
    }
}

/// When the header is present it must equal `want`.
pub fn header_eq_if_present(resp: &RawResponse, name: &str, want: &str) -> Step {
    match resp.header(name) {
        None => Ok(()),
        Some(_) => header_eq(resp, name, want),
    }
}

/// When `Docker-Content-Digest` is present it must be a digest equal to `want`, unless it
/// uses another algorithm (the spec lets a registry answer with its canonical digest).
pub fn content_digest(resp: &RawResponse, want: &Digest) -> Step {
    let Some(value) = resp.header(CONTENT_DIGEST_HEADER) else {
        return Ok(());
    };
    match value.trim().parse::<Digest>() {
        Ok(d) if d == *want || d.algorithm() != want.algorithm() => Ok(()),
        Ok(d) => Err(mismatch(
            resp,
            format!("{CONTENT_DIGEST_HEADER}: {want}"),
            d,
        )),
        Err(e) => Err(mismatch(
            resp,
            format!("{CONTENT_DIGEST_HEADER}: {want}"),
            e,
        )),
    }
}

/// The header must be absent.
pub fn no_header(resp: &RawResponse, name: &str) -> Step {
    match resp.header(name) {
        None => Ok(()),
        Some(v) => Err(mismatch(
            resp,
            format!("no {name} header"),
            format!("{name}: {v}"),
        )),
    }
}

/// The body must be an OCI error body containing `code`.
pub fn error_code(resp: &RawResponse, code: &str) -> Step {
    let errors = resp.oci_errors();
    if errors.iter().any(|e| e.code == code) {
        return Ok(());
    }
    Err(mismatch(
        resp,
        format!("an error body with code {code}"),
        actual(resp),
    ))
}

/// Status in `want` and an error body with `code`.
pub fn error(resp: &RawResponse, want: u16, code: &str) -> Step {
    status(resp, &[want])?;
    error_code(resp, code)
}

/// The body must equal `want` byte for byte.
pub fn body_eq(resp: &RawResponse, want: &[u8]) -> Step {
    if resp.body.as_ref() == want {
        return Ok(());
    }
    Err(mismatch(
        resp,
        format!("a body of {} bytes equal to the content pushed", want.len()),
        format!("{} bytes that differ", resp.body.len()),
    ))
}

/// The `Location` header, resolved against the request URL.
pub fn location(resp: &RawResponse) -> Step<String> {
    header(resp, "Location")?;
    match resp.location() {
        Some(Ok(url)) => Ok(url.to_string()),
        Some(Err(e)) => Err(mismatch(resp, "a valid Location", e)),
        None => Err(mismatch(resp, "a Location header", "none")),
    }
}

/// The body parsed as JSON.
pub fn json(resp: &RawResponse) -> Step<serde_json::Value> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        mismatch(
            resp,
            "a JSON body",
            format!("{e}; body: {}", resp.body_text()),
        )
    })
}

/// `cond` must hold; otherwise fail with `expected` vs `actual`.
pub fn ensure(
    cond: bool,
    resp: &RawResponse,
    expected: impl Display,
    actual: impl Display,
) -> Step {
    if cond {
        Ok(())
    } else {
        Err(mismatch(resp, expected, actual))
    }
}

/// A value from an earlier step that later cases need: `Err` when it failed.
pub fn need<'a, T>(prior: &'a Step<T>, what: &str) -> Step<&'a T> {
    prior.as_ref().map_err(|o| {
        fail(format!(
            "{what} failed, so this case could not run: {}",
            o.detail()
        ))
    })
}
