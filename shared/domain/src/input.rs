//! Validated user input. Each type can only be built through `parse`, so the
//! rest of the code never sees text that breaks the API's limits.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a piece of user text was refused; the message is shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidText {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters (got {got})")]
    TooLong {
        what: &'static str,
        max: usize,
        got: usize,
    },
    #[error("{what} must not contain control characters")]
    ControlCharacter { what: &'static str },
}

/// Trims `raw` and checks its length in characters (Unicode scalar values,
/// which is what a person counts and what the client's counter shows) and
/// that it holds no control characters other than line breaks and tabs.
fn checked(
    raw: &str,
    what: &'static str,
    max: usize,
    allow_empty: bool,
) -> Result<String, InvalidText> {
    let text = raw.trim();
    if !allow_empty && text.chars().all(is_invisible) {
        return Err(InvalidText::Empty { what });
    }
    let got = text.chars().count();
    if got > max {
        return Err(InvalidText::TooLong { what, max, got });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(InvalidText::ControlCharacter { what });
    }
    Ok(text.to_owned())
}

/// Characters that show nothing: white space, and the zero-width and
/// direction-control characters that `trim` keeps (U+200B–U+200F,
/// U+202A–U+202E, U+2060–U+2064, U+2066–U+2069, U+FEFF). A required text
/// made only of these is empty to a reader, so it is refused as empty;
/// inside visible text they are kept (they join emoji and mark scripts).
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, allow_empty = $allow_empty:expr) => {
        $(#[$doc])*
        ///
        /// Deserializing validates too, so records read back from a file
        /// obey the same limits as requests.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = InvalidText;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            /// Longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks `raw`.
            pub fn parse(raw: &str) -> Result<Self, InvalidText> {
                checked(raw, $what, Self::MAX_CHARS, $allow_empty).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A question's text: 1–1000 characters after trimming.
    QuestionText,
    "text",
    1000,
    allow_empty = false
);
text_type!(
    /// An event's title: up to 200 characters; may be empty.
    Title,
    "title",
    200,
    allow_empty = true
);
text_type!(
    /// The optional name a guest signs a question with: up to 100
    /// characters. An empty name means anonymous (see [`AuthorName::parse_optional`]).
    AuthorName,
    "author",
    100,
    allow_empty = false
);

impl AuthorName {
    /// `None`, or only white space, means anonymous.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, InvalidText> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(name) => Self::parse(name).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_text_limits_count_characters_after_trimming() {
        assert_eq!(QuestionText::parse("  why?  ").unwrap().as_str(), "why?");
        assert!(matches!(
            QuestionText::parse("   "),
            Err(InvalidText::Empty { .. })
        ));
        assert!(QuestionText::parse(&"é".repeat(1000)).is_ok());
        assert!(matches!(
            QuestionText::parse(&"é".repeat(1001)),
            Err(InvalidText::TooLong { got: 1001, .. })
        ));
        assert!(QuestionText::parse("line\nbreak\tand tab").is_ok());
        assert!(QuestionText::parse("nul\0byte").is_err());
    }

    #[test]
    fn author_is_optional_and_bounded() {
        assert_eq!(AuthorName::parse_optional(None).unwrap(), None);
        assert_eq!(AuthorName::parse_optional(Some("  ")).unwrap(), None);
        assert_eq!(
            AuthorName::parse_optional(Some(" Ada "))
                .unwrap()
                .unwrap()
                .as_str(),
            "Ada"
        );
        assert!(AuthorName::parse_optional(Some(&"a".repeat(101))).is_err());
    }

    #[test]
    fn a_question_of_only_invisible_characters_is_empty() {
        for invisible in [
            "\u{200B}",
            "\u{FEFF}\u{200D}",
            " \u{202E}\u{2066} ",
            "\u{2060}",
        ] {
            assert!(
                matches!(
                    QuestionText::parse(invisible),
                    Err(InvalidText::Empty { .. })
                ),
                "{invisible:?}"
            );
        }
        // Kept inside visible text: a joined emoji, a direction mark.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(QuestionText::parse(family).unwrap().as_str(), family);
        assert!(QuestionText::parse("\u{200F}why?").is_ok());
    }

    #[test]
    fn title_may_be_empty_but_not_long() {
        assert_eq!(Title::parse("").unwrap().as_str(), "");
        assert!(Title::parse(&"t".repeat(201)).is_err());
    }
}
