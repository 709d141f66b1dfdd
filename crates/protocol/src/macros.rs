//! `message_enum!`: declares a message enum once, so the serde tag, `type_name()` and the decoder's
//! dispatch table can never disagree.

/// Declares an internally tagged message enum whose variants each wrap one body struct.
///
/// Generates the enum (serde `tag = "type"`), `TYPE_NAMES`, `type_name()` and the crate-private
/// `decode_body(tag, object)` used by [`crate::codec`].
macro_rules! message_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($body:ident) = $tag:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(tag = "type")]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $tag)] $variant($body), )+
        }

        impl $name {
            /// Every `type` value of this direction, in declaration order.
            pub const TYPE_NAMES: &'static [&'static str] = &[$($tag),+];

            /// The message's `type` tag, e.g. `"get_status"` (for logs and events).
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( $name::$variant(_) => $tag, )+
                }
            }

            /// Deserializes the body of the kind named `tag` from the object (without `type`);
            /// `None` when `tag` names no kind of this direction.
            pub(crate) fn decode_body(
                tag: &str,
                object: $crate::codec::ObjectDeserializer,
            ) -> Option<Result<Self, $crate::codec::FieldError>> {
                match tag {
                    $( $tag => Some(
                        <$body as serde::Deserialize>::deserialize(object).map($name::$variant)
                    ), )+
                    _ => None,
                }
            }
        }

        $(
            impl From<$body> for $name {
                fn from(body: $body) -> Self {
                    $name::$variant(body)
                }
            }
        )+
    };
}
