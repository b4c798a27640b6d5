"""An app's test suite with Postern as its mail fixture (README: "Use it in CI").

Standard library only. Run it against `postern up --capture`:

    SMTP_URL=smtp://app:secret@127.0.0.1:2525 MAIL_API=http://127.0.0.1:8025 \
        python3 -m unittest discover -v -s examples/python

SMTP_URL is the app's own mail setting (its user and password can be
anything: capture mode takes every login and records the user name).
SMTP_CA, when set, is a certificate file to trust (Postern's is
DATA_DIR/tls/cert.pem): the app then sends over STARTTLS, as it does in
production. MAIL_API is Postern's HTTP API.

Each test gets a sandbox of its own, so parallel jobs on one Postern never
see each other's mail: the test makes the app send to addresses in the
sandbox's domain and reads with the sandbox's token.
"""

import json
import os
import smtplib
import ssl
import unittest
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

SMTP_URL = os.environ.get("SMTP_URL", "smtp://app:secret@127.0.0.1:2525")
SMTP_CA = os.environ.get("SMTP_CA")
MAIL_API = os.environ.get("MAIL_API", "http://127.0.0.1:8025").rstrip("/")


# ---- the app under test (in a real suite this is imported from the app) ----


class App:
    """Signs users up and sends them a welcome mail through its own SMTP
    settings, with a Bcc to the address that keeps an audit trail."""

    def __init__(self, smtp_url, audit_address, ca_file=None):
        self.smtp = urllib.parse.urlsplit(smtp_url)
        self.audit_address = audit_address
        self.ca_file = ca_file

    def sign_up(self, address):
        token = os.urandom(8).hex()
        link = f"https://app.example/confirm?token={token}"
        mail = EmailMessage()
        mail["From"] = "Acme <noreply@app.example>"
        mail["To"] = address
        mail["Subject"] = "Welcome to Acme"
        mail.set_content(f"Hello!\n\nConfirm your address: {link}\n")
        with smtplib.SMTP(self.smtp.hostname, self.smtp.port or 25, timeout=30) as smtp:
            if self.ca_file:
                smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
            smtp.login(
                urllib.parse.unquote(self.smtp.username),
                urllib.parse.unquote(self.smtp.password),
            )
            # The Bcc is in the envelope only, never in the message.
            smtp.send_message(mail, to_addrs=[address, self.audit_address])
        return link


# ---- the fixture: Postern's HTTP API ----


def api(method, path, token=None):
    """Calls the API; returns (status, JSON body)."""
    request = urllib.request.Request(MAIL_API + path, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    text = body.decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


class SignupMailTest(unittest.TestCase):
    def setUp(self):
        status, sandbox = api("POST", "/api/v1/sandboxes")
        self.assertEqual(status, 201, sandbox)
        self.domain, self.token = sandbox["domain"], sandbox["token"]
        self.addCleanup(api, "DELETE", f"/api/v1/sandboxes/{self.domain}", self.token)
        self.audit = f"audit@{self.domain}"
        self.app = App(SMTP_URL, self.audit, SMTP_CA)

    def wait(self, query, timeout=10):
        """The first message in the sandbox that `query` matches, waiting
        for it on the server (a fresh sandbox needs no cursor: after=0)."""
        params = urllib.parse.urlencode({"query": query, "after": 0, "timeout": timeout})
        return api("GET", f"/api/v1/wait?{params}", self.token)

    def test_welcome_mail_reaches_the_user_with_an_audit_copy(self):
        user = f"new-user@{self.domain}"
        link = self.app.sign_up(user)

        status, found = self.wait(f"to:{user} subject:Welcome")
        self.assertEqual(status, 200, found)
        message = found["message"]
        self.assertEqual(message["Subject"], "Welcome to Acme")
        self.assertEqual(message["From"]["Address"], "noreply@app.example")
        self.assertEqual([a["Address"] for a in message["To"]], [user])
        self.assertIn(f"Confirm your address: {link}", message["Text"])
        # The Bcc never shows in the message itself...
        self.assertEqual(message["Bcc"], [])

        # ...but the envelope keeps it, with the login the app used.
        status, envelope = api("GET", f"/api/v1/message/{message['ID']}/envelope", self.token)
        self.assertEqual(status, 200, envelope)
        self.assertEqual(envelope["mail_from"], "noreply@app.example")
        recipients = [r["address"] for r in envelope["recipients"]]
        self.assertEqual(recipients, [user, self.audit])
        self.assertEqual(envelope["auth_user"], urllib.parse.unquote(self.app.smtp.username))
        if SMTP_CA:
            self.assertIsNotNone(envelope["tls"], "the app was set up for STARTTLS")

        # The audit address got its own copy: `to:` finds a Bcc'd copy
        # by the mailbox it went to.
        status, copy = self.wait(f"to:{self.audit}")
        self.assertEqual(status, 200, copy)
        self.assertIn(link, copy["message"]["Text"])

    def test_signing_up_sends_no_password_reset(self):
        user = f"new-user@{self.domain}"
        self.app.sign_up(user)
        # A message the app did not send: the wait gives up with 408.
        status, answer = self.wait(f'to:{user} subject:"Reset your password"', timeout=1)
        self.assertEqual(status, 408, answer)
        self.assertIn("no matching message", answer["Error"])


if __name__ == "__main__":
    unittest.main()
