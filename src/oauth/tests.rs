use std::os::unix::fs::PermissionsExt as _;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::config::Provider;

/// A token endpoint on loopback that answers each request with the next canned response and
/// records the requests.
async fn canned_endpoint(
    answers: Vec<(u16, &'static str)>,
) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buffer = [0_u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                received.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&received).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |l| l.trim().parse().unwrap());
                    if body.len() >= length {
                        requests.push(text.clone());
                        break;
                    }
                }
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
        requests
    });
    (url, server)
}

fn oauth_config(dir: &Path, token_endpoint: &str, flow: Flow) -> OAuth2 {
    OAuth2 {
        provider: Provider::Oidc,
        flow,
        client_id: "casemail-test".to_owned(),
        client_secret: Some(SecretString::from("s3cret")),
        client_secret_file: None,
        issuer: None,
        discover: false,
        token_endpoint: token_endpoint.to_owned(),
        device_authorization_endpoint: None,
        authorization_endpoint: None,
        scopes: vec!["mail".to_owned()],
        ca_file: None,
        token_file: dir.join("oauth2-token.json"),
    }
}

fn signed_in(config: &OAuth2, expires_in: i64) -> Stored {
    let now = Timestamp::now();
    Stored {
        version: FILE_VERSION,
        flow: config.flow.as_str().to_owned(),
        client_id: config.client_id.clone(),
        token_endpoint: config.token_endpoint.clone(),
        access_token: Some("old-access".to_owned()),
        access_issued: Some(now - SignedDuration::from_secs(3600)),
        access_expires: Some(now + SignedDuration::from_secs(expires_in)),
        refresh_token: Some("refresh-1".to_owned()),
        ..Stored::default()
    }
}

#[tokio::test]
async fn a_fresh_access_token_is_used_without_asking_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: any request would fail.
    let config = oauth_config(dir.path(), "http://127.0.0.1:9/token", Flow::Device);
    write(&config.token_file, &signed_in(&config, 3000)).unwrap();
    let token = access_token(&config).await.unwrap();
    assert_eq!(token.secret.expose_secret(), "old-access");
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_and_a_rotated_refresh_token_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = canned_endpoint(vec![(
        200,
        r#"{"access_token":"new-access","token_type":"Bearer","expires_in":"600","refresh_token":"refresh-2","scope":"mail"}"#,
    )])
    .await;
    let config = oauth_config(dir.path(), &url, Flow::Device);
    write(&config.token_file, &signed_in(&config, 60)).unwrap();

    let token = access_token(&config).await.unwrap();
    assert_eq!(token.secret.expose_secret(), "new-access");
    let requests = server.await.unwrap();
    assert!(
        requests[0].contains("grant_type=refresh_token"),
        "{requests:?}"
    );
    assert!(requests[0].contains("refresh_token=refresh-1"));
    // The client authenticates with HTTP Basic, never with its secret in the body.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("casemail-test:s3cret");
    assert!(
        requests[0].contains(&format!("Authorization: Basic {basic}\r\n")),
        "{requests:?}"
    );
    assert!(!requests[0].contains("s3cret"));

    let stored = read(&config.token_file).unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("refresh-2"));
    assert_eq!(stored.access_token.as_deref(), Some("new-access"));
    assert_eq!(stored.scope.as_deref(), Some("mail"));
    let mode = std::fs::metadata(&config.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The next sign-in uses the new token without asking again.
    let again = access_token(&config).await.unwrap();
    assert_eq!(again.secret.expose_secret(), "new-access");
}

#[tokio::test]
async fn a_token_the_server_refused_is_refreshed_at_the_next_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = canned_endpoint(vec![(
        200,
        r#"{"access_token":"second","expires_in":3600}"#,
    )])
    .await;
    let config = oauth_config(dir.path(), &url, Flow::Device);
    write(&config.token_file, &signed_in(&config, 3000)).unwrap();
    let first = access_token(&config).await.unwrap();
    invalidate(&config, &first).await.unwrap();
    let second = access_token(&config).await.unwrap();
    assert_eq!(second.secret.expose_secret(), "second");
    server.await.unwrap();
    // Without a new refresh token the old one stays.
    let stored = read(&config.token_file).unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("refresh-1"));
}

#[tokio::test]
async fn a_refused_refresh_token_is_recorded_and_not_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = canned_endpoint(vec![(
        400,
        r#"{"error":"invalid_grant","error_description":"AADSTS50173: the grant was revoked"}"#,
    )])
    .await;
    let config = oauth_config(dir.path(), &url, Flow::Device);
    write(&config.token_file, &signed_in(&config, -10)).unwrap();

    let err = access_token(&config).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(err.needs_operator());
    assert!(err.to_string().contains("casemail auth login"), "{err}");
    server.await.unwrap();
    let stored = read(&config.token_file).unwrap().unwrap();
    let refusal = stored.refused.clone().unwrap();
    assert!(refusal.reason.starts_with("invalid_grant: AADSTS50173"));
    assert!(!refusal.notified);
    // The server is gone now: a second sign-in fails from the record alone.
    let again = access_token(&config).await.unwrap_err();
    assert!(matches!(again, Error::Refused { .. }));
    assert!(mark_refusal_notified(&config, refusal.at).await.unwrap());
    assert!(!mark_refusal_notified(&config, refusal.at).await.unwrap());
}

#[tokio::test]
async fn a_bare_400_to_a_refresh_is_a_refusal_too() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = canned_endpoint(vec![(400, "")]).await;
    let config = oauth_config(dir.path(), &url, Flow::Device);
    write(&config.token_file, &signed_in(&config, -10)).unwrap();
    let err = access_token(&config).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_error_is_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) =
        canned_endpoint(vec![(503, r#"{"error":"temporarily_unavailable"}"#)]).await;
    let config = oauth_config(dir.path(), &url, Flow::Device);
    write(&config.token_file, &signed_in(&config, -10)).unwrap();
    let err = access_token(&config).await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 503, .. }), "{err:?}");
    assert!(!err.needs_operator());
    server.await.unwrap();
    assert!(read(&config.token_file).unwrap().unwrap().refused.is_none());
}

#[tokio::test]
async fn client_credentials_need_no_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = canned_endpoint(vec![(
        200,
        r#"{"access_token":"app-token","expires_in":3600}"#,
    )])
    .await;
    let config = oauth_config(dir.path(), &url, Flow::ClientCredentials);
    let token = access_token(&config).await.unwrap();
    assert_eq!(token.secret.expose_secret(), "app-token");
    let requests = server.await.unwrap();
    assert!(requests[0].contains("grant_type=client_credentials"));
    assert!(requests[0].contains("scope=mail"));
}

#[tokio::test]
async fn without_a_sign_in_the_error_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(dir.path(), "http://127.0.0.1:9/token", Flow::Device);
    let err = access_token(&config).await.unwrap_err();
    assert!(err.to_string().contains("casemail auth login"), "{err}");
    // A sign-in made for another client does not count.
    let mut other = signed_in(&config, 3000);
    other.client_id = "someone-else".to_owned();
    write(&config.token_file, &other).unwrap();
    let err = access_token(&config).await.unwrap_err();
    assert!(matches!(err, Error::OtherApplication { .. }), "{err:?}");
}

#[test]
fn short_lived_tokens_are_refreshed_a_quarter_before_expiry() {
    let issued: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
    let mut stored = Stored {
        access_issued: Some(issued),
        access_expires: Some(issued + SignedDuration::from_secs(40)),
        ..Stored::default()
    };
    assert_eq!(
        refresh_due(&stored),
        Some(issued + SignedDuration::from_secs(30))
    );
    stored.access_expires = Some(issued + SignedDuration::from_secs(3600));
    assert_eq!(
        refresh_due(&stored),
        Some(issued + SignedDuration::from_secs(3300))
    );
}

#[test]
fn sasl_initial_responses() {
    let token = AccessToken {
        secret: SecretString::from("tok"),
        expires: Timestamp::UNIX_EPOCH,
    };
    assert_eq!(
        Mechanism::XOAuth2.initial_response("help@charity.example", "h", 993, &token),
        b"user=help@charity.example\x01auth=Bearer tok\x01\x01".to_vec()
    );
    // RFC 7628 §4.1's example shape, with "," and "=" escaped in the user name.
    assert_eq!(
        Mechanism::OAuthBearer.initial_response("a,b=c@x", "imap.example", 143, &token),
        b"n,a=a=2Cb=3Dc@x,\x01host=imap.example\x01port=143\x01auth=Bearer tok\x01\x01".to_vec()
    );
    assert_eq!(Mechanism::OAuthBearer.error_acknowledgement(), b"\x01");
    assert!(Mechanism::XOAuth2.error_acknowledgement().is_empty());
}

#[test]
fn the_account_comes_from_the_id_token_and_is_escaped() {
    use base64::Engine as _;
    let claims = r#"{"sub":"123","preferred_username":"help@charity.example\u202e"}"#;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    let account = account_in_id_token(&format!("e30.{payload}.sig")).unwrap();
    assert!(account.starts_with("help@charity.example"));
    assert!(!account.contains('\u{202e}'));
    assert_eq!(account_in_id_token("not-a-jwt"), None);
}

#[test]
fn the_code_is_taken_from_the_pasted_address_only_with_the_right_state() {
    let landed = "http://localhost/?code=4%2F0Ab&scope=mail&state=xyz";
    assert_eq!(login::code_from_redirect(landed, "xyz").unwrap(), "4/0Ab");
    assert!(login::code_from_redirect(landed, "other").is_err());
    let denied = "http://localhost/?error=access_denied&state=xyz";
    let err = login::code_from_redirect(denied, "xyz").unwrap_err();
    assert!(err.to_string().contains("access_denied"));
}
