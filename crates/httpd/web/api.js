// Talking to Postern's HTTP API from the page. Every change (POST, PUT,
// DELETE) carries the session's CSRF token when the page logged in with
// the form; errors come back as ApiError with the API's own message.

let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (type.includes("json")) {
      try {
        message = (await response.json()).Error || message;
      } catch {
        // keep the status line
      }
    }
    throw new ApiError(response.status, message);
  }
  if (type.includes("application/json")) return response.json();
  return response.text();
}

export const get = (path) => api("GET", path);

/** A path segment, encoded (folder names may hold "/"). */
export const segment = (text) => encodeURIComponent(text);
