//! The names a user picks options by (detector, TTA, face mode, optimiser, ...): the serde names
//! of their enums, the same in config files, flags, the service's query and the Python package.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The name of `value` (`Tta::TenCrop` → `"ten-crop"`); empty for a value that is not a plain name.
pub fn name_of<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The option called `name`; an unknown name's error lists the known ones.
pub fn parse<T: DeserializeOwned>(name: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::Tta;

    #[test]
    fn names_round_trip_and_an_unknown_one_lists_the_choices() {
        assert_eq!(name_of(&Tta::TenCrop), "ten-crop");
        assert_eq!(parse::<Tta>("ten-crop"), Ok(Tta::TenCrop));
        let err = parse::<Tta>("sideways").unwrap_err();
        assert!(err.contains("sideways") && err.contains("flip"), "{err}");
    }
}
