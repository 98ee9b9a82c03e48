//! Why a Kafka delivery (or the link to the brokers) failed: one type whose
//! `Display` is the log text, whose label is the metric label and whose
//! hint says what an operator can do, so the three always agree.

use std::fmt;

use rdkafka::error::RDKafkaErrorCode as Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFailure {
    /// The topic does not exist and the brokers do not create it.
    UnknownTopic,
    /// The brokers refused this client (ACLs, SASL, TLS).
    NotAuthorized,
    /// A message is larger than the topic or broker accepts.
    TooLarge,
    /// No broker could be reached.
    Unreachable,
    /// The producer failed for good (idempotence state lost).
    Fatal,
    /// Any other error code of librdkafka or the broker.
    Other(Code),
}

impl KafkaFailure {
    pub fn classify(code: Code) -> KafkaFailure {
        use KafkaFailure as F;
        match code {
            Code::UnknownTopic | Code::UnknownTopicOrPartition => F::UnknownTopic,
            Code::TopicAuthorizationFailed
            | Code::ClusterAuthorizationFailed
            | Code::Authentication
            | Code::SaslAuthenticationFailed => F::NotAuthorized,
            Code::MessageSizeTooLarge => F::TooLarge,
            Code::AllBrokersDown | Code::BrokerTransportFailure | Code::Resolve => F::Unreachable,
            Code::Fatal => F::Fatal,
            other => F::Other(other),
        }
    }

    /// Stable snake_case label for the counters.
    pub fn label(&self) -> &'static str {
        use KafkaFailure as F;
        match self {
            F::UnknownTopic => "unknown_topic",
            F::NotAuthorized => "not_authorized",
            F::TooLarge => "message_too_large",
            F::Unreachable => "brokers_unreachable",
            F::Fatal => "producer_fatal",
            F::Other(_) => "other",
        }
    }

    /// Failures that do not heal by themselves: an operator must act.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            KafkaFailure::UnknownTopic | KafkaFailure::NotAuthorized | KafkaFailure::TooLarge
        )
    }

    pub fn hint(&self) -> &'static str {
        use KafkaFailure as F;
        match self {
            F::UnknownTopic => "create the topic (kafka-topics.sh --create) or turn on auto.create.topics.enable on the brokers; the messages are kept and sent once it exists",
            F::NotAuthorized => "grant this client's principal Write on the topic and IdempotentWrite on the cluster, or fix its credentials",
            F::TooLarge => "raise max.message.bytes on the topic (and message.max.bytes in [destination.properties]) above source.max_message_bytes",
            F::Unreachable => "check that the brokers run and are reachable; the producer reconnects by itself",
            F::Fatal => "the producer lost its idempotence state; restart ringest",
            F::Other(_) => "retrying",
        }
    }
}

impl fmt::Display for KafkaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KafkaFailure as F;
        match self {
            F::UnknownTopic => f.write_str("the topic does not exist"),
            F::NotAuthorized => f.write_str("not authorized"),
            F::TooLarge => f.write_str("message larger than the brokers accept"),
            F::Unreachable => f.write_str("no broker reachable"),
            F::Fatal => f.write_str("fatal producer error"),
            F::Other(code) => write!(f, "{code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_is_permanent_and_says_how_to_create_it() {
        for code in [Code::UnknownTopic, Code::UnknownTopicOrPartition] {
            let f = KafkaFailure::classify(code);
            assert_eq!(f, KafkaFailure::UnknownTopic);
            assert!(f.is_permanent());
            assert_eq!(f.label(), "unknown_topic");
            assert!(f.hint().contains("create the topic"));
        }
    }

    #[test]
    fn an_unreachable_broker_heals_by_itself() {
        let f = KafkaFailure::classify(Code::AllBrokersDown);
        assert_eq!(f, KafkaFailure::Unreachable);
        assert!(!f.is_permanent());
        assert_eq!(
            KafkaFailure::classify(Code::TopicAuthorizationFailed).label(),
            "not_authorized"
        );
        assert_eq!(
            KafkaFailure::classify(Code::NotLeaderForPartition).label(),
            "other"
        );
    }
}
