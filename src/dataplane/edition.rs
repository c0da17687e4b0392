//! Editing documents by function (`POST /indexes/{uid}/documents/edit`): one Rhai function
//! broadcast to every node (each edits the documents it holds) as one Miroir task.
//!
//! The function sees the stored document, `_miroir_shard` included, and could drop it
//! (`doc = #{...}`): the nodes therefore get the client's function wrapped so that the tag is
//! put back on every document that stays one ([`wrap`]). The prefix is on the function's first
//! line, so the positions Rhai reports on that line are shifted back in errors
//! ([`unwrap_error_message`]); the task details keep the client's function. A function that
//! does not compile is sent unwrapped, so the client gets the node's own error (the feature
//! check comes first on Meilisearch).

use super::merge::SHARD_FIELD;

const KEPT: &str = "_miroir_shard_kept";

fn prefix() -> String {
    format!("let {KEPT} = doc.{SHARD_FIELD}; ")
}

/// Whether the function compiles (Meilisearch's check before it enqueues the task).
pub fn compiles(function: &str) -> bool {
    rhai::Engine::new().compile(function).is_ok()
}

/// The function the nodes run: the client's, with the shard tag kept.
pub fn wrap(function: &str) -> String {
    format!("{}{function}\n;if type_of(doc) == \"map\" {{ doc.{SHARD_FIELD} = {KEPT}; }}", prefix())
}

/// A node's error message about the wrapped function, as it reads for the client's.
pub fn unwrap_error_message(message: &str) -> String {
    const MARK: &str = "(line 1, position ";
    let shift = prefix().chars().count();
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i + MARK.len()]);
        rest = &rest[i + MARK.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse::<usize>() {
            Ok(p) if p > shift => out.push_str(&(p - shift).to_string()),
            _ => out.push_str(&digits),
        }
        rest = &rest[digits.len()..];
    }
    out.push_str(rest);
    out.replace(KEPT, "doc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_survives_a_replaced_document() {
        let engine = rhai::Engine::new();
        let ast = engine.compile(wrap("doc = #{id: doc.id, title: \"new\"}")).unwrap();
        let mut scope = rhai::Scope::new();
        let mut doc = rhai::Map::new();
        doc.insert("id".into(), 1_i64.into());
        doc.insert(SHARD_FIELD.into(), 7_i64.into());
        scope.push("doc", doc);
        engine.run_ast_with_scope(&mut scope, &ast).unwrap();
        let out: rhai::Map = scope.get_value("doc").unwrap();
        assert_eq!(out.get(SHARD_FIELD).unwrap().as_int().unwrap(), 7);
        assert_eq!(out.get("title").unwrap().clone().into_string().unwrap(), "new");
        // a deletion stays one
        let ast = engine.compile(wrap("doc = ()")).unwrap();
        let mut scope = rhai::Scope::new();
        scope.push("doc", rhai::Map::new());
        engine.run_ast_with_scope(&mut scope, &ast).unwrap();
        assert!(scope.get_value::<rhai::Dynamic>("doc").unwrap().is_unit());
    }

    #[test]
    fn positions_read_as_in_the_clients_function() {
        let engine = rhai::Engine::new();
        // A runtime error on the first line.
        let ast = engine.compile(wrap("let x = 1 / 0;")).unwrap();
        let mut scope = rhai::Scope::new();
        scope.push("doc", rhai::Map::new());
        let wrapped_err = engine.run_ast_with_scope(&mut scope, &ast).unwrap_err().to_string();
        let ast = engine.compile("let x = 1 / 0;").unwrap();
        let mut scope = rhai::Scope::new();
        scope.push("doc", rhai::Map::new());
        let plain_err = engine.run_ast_with_scope(&mut scope, &ast).unwrap_err().to_string();
        assert_eq!(unwrap_error_message(&wrapped_err), plain_err);
        assert!(compiles("doc.a = 1"));
        assert!(!compiles("doc.a = "));
    }
}
