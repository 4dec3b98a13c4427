//! The message contract with Amplify Engage: decoding request bodies, validating requests,
//! mapping them to Okta client metadata, naming the Okta client, and the result message.
//!
//! Everything here is pure code without I/O. The flow for one message:
//!
//! 1. [`decode`] turns the AMQP body into an [`Envelope`] (a JSON object and a request id),
//!    or a [`DecodeError`].
//! 2. [`parse_request`] validates the envelope into a [`Request`], applying the mapping
//!    rules to `credentialData` for provision, or returns a [`ValidationError`].
//! 3. [`build_registration`] renders the Okta registration body of a provision request;
//!    [`client_name`] renders the deterministic client name for any job.
//! 4. [`ResultMessage`] carries the outcome, with [`codes`] for `status.code`. When the
//!    request has `encryption`, [`encrypt_secret`] encrypts the client secret in it.

pub mod codes;
mod credential_data;
mod decode;
pub mod encryption;
mod error;
mod fields;
mod jwks;
mod mapping;
mod naming;
pub mod registration;
mod request;
mod result;
mod uris;
mod vocabulary;

pub use credential_data::{ApplicationType, AuthMethod, CredentialData, GrantType, ResponseType};
pub use decode::{decode, DecodeError, Envelope, DEFAULT_MAX_BODY_BYTES, MAX_REQUEST_ID_CHARS};
pub use encryption::{
    encrypt_secret, EncryptionAlgorithm, EncryptionError, EncryptionHash, EncryptionSpec,
};
pub use error::{ErrorKind, ValidationError, MAX_ERROR_VALUE_CHARS};
pub use jwks::{ec_thumbprint, rsa_jwk, rsa_thumbprint, MIN_RSA_BITS};
pub use naming::{
    client_name, id_short, NameFields, NameTemplate, Placeholder, TemplateError,
    DEFAULT_NAME_TEMPLATE, ID_SHORT_HEX_CHARS, MAX_CLIENT_NAME_CHARS,
};
pub use registration::{build_registration, ClientRegistration};
pub use request::{parse_request, CredentialAction, Job, Operation, Request};
pub use result::{CredentialState, Level, ResultData, ResultMessage, Status, SUCCESS_CODE};
