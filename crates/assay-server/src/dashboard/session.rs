//! Logging in: a form that checks a token and keeps it in an HttpOnly, SameSite=Strict cookie
//! (Secure when served over https); a bearer header works too. Pages without a valid token
//! redirect to `/login`.

use askama::Template;
use assay_store::TokenRole;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{error_page, page_response, see_other};
use crate::AppState;
use crate::auth::{Caller, TOKEN_COOKIE, request_token};

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    nav: super::Nav,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    page_response(
        StatusCode::OK,
        LoginPage {
            nav: super::Nav::none(),
            next: safe_next(q.next.as_deref()),
            error: None,
        },
    )
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&form.next));
    let token = form.token.trim();
    let failed = |message: &str| {
        page_response(
            StatusCode::UNAUTHORIZED,
            LoginPage {
                nav: super::Nav::none(),
                next: next.clone(),
                error: Some(message.to_string()),
            },
        )
    };
    if token.is_empty() {
        return failed("enter a token (the admin token is in <data-dir>/admin.token)");
    }
    // A cookie value cannot hold these; no token we hand out does.
    if !token
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    {
        return failed("unknown or revoked token");
    }
    match state.store.authenticate(token).await {
        Ok(Some(_)) => {
            let mut response = see_other(&next);
            let cookie = format!(
                "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                if is_https(&headers) { "; Secure" } else { "" }
            );
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => failed("unknown or revoked token"),
        Err(e) => error_page(
            None,
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to {e}"),
        ),
    }
}

pub async fn logout(headers: HeaderMap) -> Response {
    let mut response = see_other("/login");
    let cookie = format!(
        "{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if is_https(&headers) { "; Secure" } else { "" }
    );
    if let Ok(value) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether the browser talks https to us (directly or through a proxy that says so).
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Where to go after logging in: a path on this server only (no `//host`, no scheme). Browsers
/// drop tabs and newlines from a URL and read `\\` as `/`, so `/\t/evil.example/` (from
/// `next=/%09/evil.example/`) would become `//evil.example/`: any control character, space or
/// backslash sends the user to `/` instead.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Every page needs a valid token (cookie or bearer header); without one, GETs go to the login
/// page and come back afterwards.
pub async fn require_login(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.auth {
        request.extensions_mut().insert(Caller {
            name: "anonymous".into(),
            role: TokenRole::Admin,
        });
        return next.run(request).await;
    }
    let token = request_token(request.headers());
    let info = match token {
        Some(token) => match state.store.authenticate(&token).await {
            Ok(info) => info,
            Err(e) => {
                return error_page(
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to {e}"),
                );
            }
        },
        None => None,
    };
    let Some(info) = info else {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next = if request.method() == axum::http::Method::GET {
            target
        } else {
            "/"
        };
        return see_other(&format!("/login?next={}", encode(next))).into_response();
    };
    request.extensions_mut().insert(Caller {
        name: info.name,
        role: info.role,
    });
    next.run(request).await
}

/// What a query value keeps as it is: unreserved characters, and `/` (a path given as `next`).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encode for a query value.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(
            safe_next(Some("/executions?status=failed")),
            "/executions?status=failed"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn security_login_next_with_a_tab_or_newline_stays_on_this_server() {
        // `next=/%09/evil.example/` decodes to this; a browser drops the tab: `//evil.example/`.
        for evil in [
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/\u{0}/evil.example",
            "/\t\\evil.example",
        ] {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("/executions?a=b&c"), "/executions%3Fa%3Db%26c");
    }
}
