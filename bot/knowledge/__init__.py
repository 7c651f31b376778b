"""Knowledge: the business's catalog and documents, indexed per tenant and searched by the
agents (`search_knowledge`), plus the product pictures and documents they can send."""
