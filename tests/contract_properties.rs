//! Properties of the message contract on arbitrary input. The worker runs `decode`, then
//! `parse_request`, then `build_registration` or `client_name` and the encryption key check on
//! every delivery. None of them may panic, and each input must end as a valid request or as
//! an error with one of the documented codes.

mod fuzz;

use okta_dcr_worker::contract::{
    self, codes, decode, encrypt_secret, parse_request, DecodeError, Job, NameTemplate,
    ResultMessage, MAX_REQUEST_ID_CHARS,
};
use okta_dcr_worker::secret::Secret;
use proptest::prelude::*;

use fuzz::FuzzMessage;

/// The body size limit the properties run with, so that some bodies exceed it.
const MAX_BODY_BYTES: usize = 4096;

/// The codes a body that cannot be decoded is dead-lettered with.
const DECODE_CODES: [&str; 5] = [
    codes::BODY_TOO_LARGE,
    codes::UNSUPPORTED_CONTENT_TYPE,
    codes::INVALID_UTF8,
    codes::INVALID_JSON,
    codes::INVALID_REQUEST,
];

/// How the contract classified one message.
#[derive(Debug, PartialEq)]
enum Classified {
    /// Dead-lettered with this code.
    Undecodable(&'static str),
    /// Gets an Error result with this code.
    Rejected(&'static str),
    /// A valid request, handed to its job.
    Valid(Job),
}

/// Runs the message through the contract as the worker does, checking each step's output.
fn classify(message: &FuzzMessage, max_body_bytes: usize) -> Classified {
    let decoded = decode(
        &message.body,
        message.content_type.as_deref(),
        message.message_id.as_deref(),
        max_body_bytes,
    );
    let envelope = match decoded {
        Ok(envelope) => envelope,
        Err(error) => return undecodable(&error),
    };
    let id_chars = envelope.request_id.chars().count();
    assert!(id_chars > 0, "empty request id");
    assert!(
        id_chars <= MAX_REQUEST_ID_CHARS,
        "request id of {id_chars} characters"
    );

    let request = match parse_request(&envelope) {
        Ok(request) => request,
        Err(error) => {
            assert_eq!(error.code(), codes::INVALID_REQUEST);
            assert!(
                !error.to_string().is_empty(),
                "validation error without text"
            );
            let result = ResultMessage::rejected(&envelope, &error, 1);
            let read_back: ResultMessage = serde_json::from_slice(&result.to_json())
                .expect("a rejection result is valid JSON");
            assert_eq!(read_back.request_id, envelope.request_id);
            assert_eq!(read_back.status.code, codes::INVALID_REQUEST);
            assert!(!result.routing_key().is_empty());
            return Classified::Rejected(codes::INVALID_REQUEST);
        }
    };
    assert_eq!(request.request_id, envelope.request_id);
    assert!(
        !request.id.is_empty(),
        "valid request without a credential id"
    );

    if let Some(spec) = &request.encryption {
        let sample = Secret::new("s".repeat(64));
        if let Err(error) = encrypt_secret(&sample, spec) {
            assert_eq!(error.code(), codes::ENCRYPTION_FAILED);
            return Classified::Rejected(codes::ENCRYPTION_FAILED);
        }
    }
    let template = NameTemplate::default();
    let checked = match request.job {
        Job::Provision => contract::build_registration(&request, &template).map(|_| ()),
        _ => contract::client_name(&request, &template).map(|_| ()),
    };
    match checked {
        Ok(()) => Classified::Valid(request.job),
        Err(error) => {
            assert_eq!(error.code(), codes::INVALID_REQUEST);
            Classified::Rejected(codes::INVALID_REQUEST)
        }
    }
}

fn undecodable(error: &DecodeError) -> Classified {
    let code = error.code();
    assert!(DECODE_CODES.contains(&code), "unknown decode code {code}");
    assert!(!error.reason().is_empty(), "decode error without a reason");
    Classified::Undecodable(code)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_classified(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        content_type in fuzz::content_type(),
        message_id in fuzz::message_id(),
        max_body_bytes in 1usize..4096,
    ) {
        let message = FuzzMessage { body, content_type, message_id };
        let classified = classify(&message, max_body_bytes);
        if message.body.len() > max_body_bytes {
            prop_assert_eq!(classified, Classified::Undecodable(codes::BODY_TOO_LARGE));
        }
    }

    #[test]
    fn arbitrary_json_classified(
        value in fuzz::json_value(),
        message_id in fuzz::message_id(),
    ) {
        let message = FuzzMessage {
            body: value.to_string().into_bytes(),
            content_type: Some("application/json".to_owned()),
            message_id,
        };
        let classified = classify(&message, usize::MAX);
        if !value.is_object() {
            prop_assert_eq!(classified, Classified::Undecodable(codes::INVALID_REQUEST));
        }
    }

    #[test]
    fn request_shaped_json_classified(value in fuzz::request_shaped()) {
        let message = FuzzMessage {
            body: value.to_string().into_bytes(),
            content_type: None,
            message_id: Some("message-id".to_owned()),
        };
        classify(&message, MAX_BODY_BYTES * 16);
    }

    #[test]
    fn any_message_classified(message in fuzz::message()) {
        classify(&message, MAX_BODY_BYTES);
    }

    #[test]
    fn valid_provision_accepted(value in fuzz::valid_provision()) {
        let message = FuzzMessage {
            body: value.to_string().into_bytes(),
            content_type: Some("application/json".to_owned()),
            message_id: None,
        };
        prop_assert_eq!(classify(&message, MAX_BODY_BYTES), Classified::Valid(Job::Provision));
    }
}
