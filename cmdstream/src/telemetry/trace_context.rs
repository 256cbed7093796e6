//! The W3C `traceparent` header as the call's trace-context slot carries
//! it: `00-{trace id: 32 hex}-{parent span id: 16 hex}-{flags: 2 hex}`.
//! Without I/O and without OpenTelemetry, so that it is tested alone.

/// One `traceparent`: the trace, the span that sent the call, the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) flags: u8,
}

impl TraceParent {
    /// Reads a `traceparent` as the W3C recommendation says a receiver
    /// must: version `ff` and all-zero ids are invalid; a later version
    /// than `00` may carry more after the flags, separated by `-`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() < 55 || !bytes[..55].iter().all(u8::is_ascii) {
            return None;
        }
        let (version, trace, span, flags) =
            (&text[0..2], &text[3..35], &text[36..52], &text[53..55]);
        if [bytes[2], bytes[35], bytes[52]] != [b'-'; 3] {
            return None;
        }
        let version = hex(version)? as u8;
        match version {
            0xff => return None,
            0 if bytes.len() != 55 => return None,
            _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
            _ => {}
        }
        let parsed = TraceParent {
            trace_id: hex(trace)?,
            span_id: hex(span)? as u64,
            flags: hex(flags)? as u8,
        };
        (parsed.trace_id != 0 && parsed.span_id != 0).then_some(parsed)
    }

    /// The header's text, version `00`.
    pub(crate) fn format(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Lower-case hex digits only, as the recommendation requires.
fn hex(digits: &str) -> Option<u128> {
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_recommendations_example() {
        let parsed = TraceParent::parse(SAMPLE).unwrap();
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.span_id, 0x00f067aa0ba902b7);
        assert_eq!(parsed.flags, 1);
        assert_eq!(parsed.format(), SAMPLE);
    }

    #[test]
    fn refuses_what_a_receiver_must_refuse() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(TraceParent::parse(later).is_some());
    }

    proptest::proptest! {
        #[test]
        fn what_it_writes_it_reads(trace_id in 1u128.., span_id in 1u64.., flags: u8) {
            let tp = TraceParent { trace_id, span_id, flags };
            proptest::prop_assert_eq!(TraceParent::parse(&tp.format()), Some(tp));
        }

        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,80}") {
            let _ = TraceParent::parse(&text);
        }
    }
}
