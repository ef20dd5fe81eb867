//! Rendering resolved flows as a table, Markdown, CSV or JSON.
