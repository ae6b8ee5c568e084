//! Errors in one line, causes included: how every 5xx and every failed
//! background job is logged. (The text log format prints `source()` chains
//! of error fields by itself, the JSON format of the Lambdas does not, so
//! the chain is spelled out.)

/// `error: its cause: that cause's cause: …`
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("appending a record")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_in_the_line() {
        let outer = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(
            super::cause_chain(&outer),
            "appending a record: disk on fire"
        );
    }
}
