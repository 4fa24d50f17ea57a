//! "Sign in with Slack" (OpenID Connect): the authorize link, and the code exchanged for the
//! person's Slack user and workspace.
//!
//! Written with reqwest rather than slack-morphism, which (2.31) has no `openid.connect.*`
//! methods. The identity is read from `openid.connect.userInfo`, called with the access token
//! the code was just exchanged for, over TLS with Slack itself: that is the check OpenID Connect
//! asks for when the ID token comes straight from the token endpoint, so no JWT is verified here.

use serde::Deserialize;

/// Slack's authorize endpoint, where the browser is sent to sign in.
pub const AUTHORIZE_URL: &str = "https://slack.com/openid/connect/authorize";

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackIdentity {
    /// The member ID (`U024BE7LH`): the `slack:` actor.
    pub user_id: String,
    pub team_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Slack answered `ok: false` (an expired or reused code, a wrong client secret).
    #[error("Slack refused the sign-in: {0}")]
    Refused(String),
    #[error("Slack could not be reached: {0}")]
    Unreachable(String),
    #[error("Slack's answer was not understood: {0}")]
    Malformed(String),
}

/// The link that starts a sign-in: scopes `openid profile`, the `state` to check on return,
/// a `nonce`, and the workspace to sign in to when there is one.
pub fn authorize_url(
    authorize: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    team: Option<&str>,
) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("scope", "openid profile"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("nonce", nonce),
    ];
    if let Some(team) = team {
        params.push(("team", team));
    }
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    format!("{authorize}?{query}")
}

#[derive(Deserialize)]
struct TokenAnswer {
    ok: bool,
    error: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    ok: bool,
    error: Option<String>,
    #[serde(rename = "https://slack.com/user_id")]
    user_id: Option<String>,
    #[serde(rename = "https://slack.com/team_id")]
    team_id: Option<String>,
    name: Option<String>,
}

/// Exchanges the `code` Slack sent back (`openid.connect.token`) and reads who it belongs to
/// (`openid.connect.userInfo`), on the Web API at `api_url`.
pub async fn identify(
    http: &reqwest::Client,
    api_url: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
) -> Result<SlackIdentity, OidcError> {
    let token: TokenAnswer = call(http.post(format!("{api_url}/openid.connect.token")).form(&[
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("grant_type", "authorization_code"),
    ]))
    .await?;
    let access = match token {
        TokenAnswer {
            ok: true,
            access_token: Some(t),
            ..
        } => t,
        TokenAnswer { error, .. } => {
            return Err(OidcError::Refused(
                error.unwrap_or_else(|| "no access token".into()),
            ))
        }
    };
    let info: UserInfo = call(
        http.post(format!("{api_url}/openid.connect.userInfo"))
            .bearer_auth(access),
    )
    .await?;
    match info {
        UserInfo {
            ok: true,
            user_id: Some(user_id),
            team_id,
            name,
            ..
        } if !user_id.is_empty() => Ok(SlackIdentity {
            user_id,
            team_id,
            name,
        }),
        UserInfo { ok: true, .. } => Err(OidcError::Malformed(
            "no https://slack.com/user_id in openid.connect.userInfo".into(),
        )),
        UserInfo { error, .. } => {
            Err(OidcError::Refused(error.unwrap_or_else(|| {
                "openid.connect.userInfo said no".into()
            })))
        }
    }
}

async fn call<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, OidcError> {
    let resp = req
        .send()
        .await
        .map_err(|e| OidcError::Unreachable(e.to_string()))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| OidcError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        return Err(OidcError::Unreachable(format!("HTTP {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| OidcError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_authorize_link_asks_for_openid_and_profile_and_carries_the_state() {
        let url = super::authorize_url(
            super::AUTHORIZE_URL,
            "123.456",
            "https://ops.example.com/signin/slack/callback",
            "st&ate",
            "n1",
            Some("T0R7GR"),
        );
        assert_eq!(
            url,
            "https://slack.com/openid/connect/authorize?response_type=code&scope=openid+profile\
             &client_id=123.456&redirect_uri=https%3A%2F%2Fops.example.com%2Fsignin%2Fslack%2Fcallback\
             &state=st%26ate&nonce=n1&team=T0R7GR"
        );
    }
}
