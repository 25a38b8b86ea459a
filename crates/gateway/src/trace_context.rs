//! W3C Trace Context (`traceparent`) on the way to the backend.

use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

use crate::telemetry::ActivityId;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// W3C Trace Context: the backend's request carries the client's trace with the gateway as its
/// parent (a new parent id, the flags kept), or, when the client sent no valid `traceparent`,
/// a new sampled trace whose id is the activity id. `tracestate` passes unchanged.
pub(crate) fn propagate(headers: &mut HeaderMap, activity_id: &ActivityId) {
    // One lookup for the read and the write.
    let entry = headers.entry(TRACEPARENT);
    let incoming = match &entry {
        Entry::Occupied(found) => TraceParent::parse(found.get().as_bytes()),
        Entry::Vacant(_) => None,
    };
    let bytes = activity_id.bytes();
    // The counter half of the activity id, mixed with its random half: unique per request.
    let mut parent_id = [0u8; 8];
    for (i, byte) in parent_id.iter_mut().enumerate() {
        *byte = bytes[8 + i] ^ bytes[i];
    }
    if parent_id == [0; 8] {
        parent_id[7] = 1;
    }
    let (trace_id, flags) = match incoming {
        Some(parent) => (parent.trace_id, parent.flags),
        None => (*bytes, 0x01),
    };
    // `00-` trace `-` parent `-` flags, encoded in place (this runs once per request).
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let encoded = hex::encode_to_slice(trace_id, &mut value[3..35])
        .and_then(|()| hex::encode_to_slice(parent_id, &mut value[36..52]))
        .and_then(|()| hex::encode_to_slice([flags], &mut value[53..55]));
    if let (Ok(()), Ok(value)) = (encoded, HeaderValue::from_bytes(&value)) {
        match entry {
            Entry::Occupied(mut found) => {
                found.insert(value);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(value);
            }
        }
    }
}

/// The parts of a version-00 `traceparent` the gateway keeps.
struct TraceParent {
    trace_id: [u8; 16],
    flags: u8,
}

impl TraceParent {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower-case, ids not all zero;
    /// anything else is ignored as the specification says.
    fn parse(value: &[u8]) -> Option<Self> {
        if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let lower_hex = |part: &[u8]| part.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        let (trace, parent, flags) = (&value[3..35], &value[36..52], &value[53..55]);
        if !(lower_hex(trace) && lower_hex(parent) && lower_hex(flags)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        let mut flag = [0u8; 1];
        hex::decode_to_slice(flags, &mut flag).ok()?;
        let zero = |part: &[u8]| part.iter().all(|&b| b == b'0');
        (!zero(trace) && !zero(parent)).then_some(TraceParent { trace_id, flags: flag[0] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_keeps_its_trace_and_flags_with_a_new_parent_and_others_start_a_trace() {
        let activity = ActivityId::next();
        let mut headers = HeaderMap::new();
        let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        headers.insert(TRACEPARENT, HeaderValue::from_static(client));
        propagate(&mut headers, &activity);
        let sent = headers[TRACEPARENT].to_str().unwrap_or_default().to_owned();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-00"), "{sent}");
        assert_ne!(&sent[36..52], "00f067aa0ba902b7", "the gateway is the new parent");
        assert!(TraceParent::parse(sent.as_bytes()).is_some(), "{sent}");

        for invalid in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::try_from(invalid) {
                headers.insert(TRACEPARENT, value);
            }
            propagate(&mut headers, &activity);
            let sent = headers[TRACEPARENT].to_str().unwrap_or_default().to_owned();
            assert_eq!(&sent[3..35], activity.to_string(), "{invalid:?} starts a trace named by the activity id");
            assert!(sent.ends_with("-01"), "{sent}");
        }
    }
}
