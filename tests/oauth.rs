//! End to end: the worker authenticates to okta-sim as an OAuth 2.0 service app
//! (private_key_jwt) instead of with an API token.

mod common;

use std::time::Duration;

use common::{provision, Harness};
use okta_dcr_worker::contract::Level;
use okta_dcr_worker::secret::Secret;
use okta_dcr_worker::settings::OktaCredential;
use okta_dcr_worker::sim::{SimConfig, SimServiceApp};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;

const TOKEN_LIFETIME: Duration = Duration::from_secs(4);

async fn service_app_harness() -> Harness {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let public_key_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private_key_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let sim_config = SimConfig {
        service_app: Some(SimServiceApp {
            client_id: "0oaServiceApp00001".to_owned(),
            public_key_pem,
            token_lifetime: TOKEN_LIFETIME,
        }),
        ..SimConfig::default()
    };
    Harness::start_with_sim(sim_config, |settings| {
        settings.okta.credential = OktaCredential::ServiceApp {
            client_id: "0oaServiceApp00001".to_owned(),
            private_key: Secret::new(private_key_pem),
            key_id: None,
        };
    })
    .await
}

#[tokio::test]
async fn service_app_tokens_used_and_renewed() {
    let harness = service_app_harness().await;
    for index in 0..5 {
        harness
            .publish(&provision(
                &format!("r-oauth-{index}"),
                &format!("cred-oauth-{index}"),
            ))
            .await;
    }
    for _ in 0..5 {
        let result = harness.next_result().await;
        assert_eq!(
            result.status.level,
            Level::Success,
            "{}",
            result.status.reason
        );
    }
    assert_eq!(
        harness.sim.clients().len(),
        5,
        "calls with Bearer tokens succeeded"
    );
    assert_eq!(
        harness.sim.token_requests(),
        1,
        "one token for calls within its lifetime"
    );

    harness.sim.revoke_access_tokens();
    harness
        .publish(&provision("r-oauth-revoked", "cred-oauth-revoked"))
        .await;
    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert_eq!(
        harness.sim.token_requests(),
        2,
        "one renewal after the token was revoked"
    );

    tokio::time::sleep(TOKEN_LIFETIME).await;
    harness
        .publish(&provision("r-oauth-expired", "cred-oauth-expired"))
        .await;
    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert_eq!(
        harness.sim.token_requests(),
        3,
        "a new token after the lifetime"
    );
    harness.finish().await;
}
