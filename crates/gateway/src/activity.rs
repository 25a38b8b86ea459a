//! Activity ids: the random id a failure is known by, in the response body and the log line alike.

pub(crate) fn activity_id() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
}
