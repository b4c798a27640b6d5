// What the page knows, shared by its modules.

export const PAGE_SIZE = 50;

export const state = {
  /** GET /api/v1/session */
  session: null,
  /** An account with folders (webmail) rather than the fixture view. */
  webmail: false,
  /** Webmail: the account's folders ({name, special_use, messages, unread, …}). */
  folders: [],
  folder: "INBOX",
  query: "",
  start: 0,
  /** The list's page: message summaries, newest first. */
  rows: [],
  /** Messages the list's query covers, and how many of them are unread. */
  total: 0,
  unread: 0,
  /** The open message's ID, and its view (GET /api/v1/message/{ID}). */
  selected: null,
  message: null,
};

export function folderBySpecialUse(use) {
  return state.folders.find((f) => f.special_use === use);
}

export function rowById(id) {
  return state.rows.find((m) => m.ID === id);
}

export function hasFlag(message, flag) {
  return (message?.Flags || []).some((f) => f.toLowerCase() === flag.toLowerCase());
}
