// Small DOM and formatting helpers. Message data only ever reaches the
// document as text (textContent, attribute values), never as markup.

/** el("td", {class: "x", title: "y"}, "text", child, …) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} kB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** Today: 14:05; this year: 3 Mar; else 2024-03-03. */
export function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  if (date.getFullYear() === now.getFullYear()) {
    return date.toLocaleDateString([], { day: "numeric", month: "short" });
  }
  return date.toISOString().slice(0, 10);
}

export function longTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

/** {Name, Address} → "Name <address>" or "address". */
export function person(a) {
  if (!a) return "";
  return a.Name ? `${a.Name} <${a.Address}>` : a.Address;
}

export function people(list) {
  return (list || []).map(person).join(", ");
}

/** "a@x, B <b@y>" → ["a@x", "b@y"] */
export function addressList(text) {
  return text
    .split(/[,;\n]/)
    .map((part) => {
      const inBrackets = part.match(/<([^>]*)>/);
      return (inBrackets ? inBrackets[1] : part).trim();
    })
    .filter(Boolean);
}

/** An ArrayBuffer as base64, in chunks (large files). */
export function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
