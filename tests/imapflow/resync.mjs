// Drives Postern's IMAP server with imapflow, QRESYNC and CONDSTORE on
// (tests/tests/imap_clients.rs runs it). Each run prints one JSON line per
// step on stdout; the test reads them and changes the mailbox from another
// session in between.
//
//   node resync.mjs sync   PORT USER PASS
//     -> {"uidValidity", "highestModseq", "messages": [{uid, flags}]}
//   node resync.mjs resync PORT USER PASS UIDVALIDITY MODSEQ
//     -> {"step": "resynced", "open": events, "fetch": events, "changed",
//         "exists", "highestModseq"}, events being what imapflow reported
//         while its SELECT (QRESYNC) and its CHANGEDSINCE fetch ran:
//         {"vanished": [uid], "earlier": [bool], "expunged": [seq],
//          "flags": [{uid, flags}]}
//     then stays selected (IDLE) until one expunge and one flag change
//     arrive from elsewhere, and prints
//     -> {"step": "live", ...events, "exists"}
import { ImapFlow } from 'imapflow';

const [mode, port, user, pass, uidValidity, modseq] = process.argv.slice(2);

const wire = {
    debug: (o) => o && o.src && console.error(o.src, JSON.stringify(o.msg || '')),
    info: () => {},
    warn: (o) => console.error('warn', JSON.stringify(o)),
    error: (o) => console.error('error', JSON.stringify(o))
};

function client() {
    return new ImapFlow({
        host: '127.0.0.1',
        port: Number(port),
        secure: false,
        doSTARTTLS: false,
        auth: { user, pass },
        // IMAPFLOW_DEBUG=1 shows the wire on stderr.
        logger: process.env.IMAPFLOW_DEBUG ? wire : false,
        qresync: true,
        // IDLE soon after the last command (the default waits 15 s).
        autoIdleDelay: 200
    });
}

const sorted = (flags) => [...flags].sort();
const print = (obj) => console.log(JSON.stringify(obj, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));

async function sync() {
    const c = client();
    await c.connect();
    if (!c.enabled.has('QRESYNC') || !c.enabled.has('CONDSTORE')) {
        throw new Error(`QRESYNC/CONDSTORE not enabled: ${[...c.enabled]}`);
    }
    const box = await c.mailboxOpen('INBOX');
    const messages = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true })) {
        messages.push({ uid: m.uid, flags: sorted(m.flags) });
    }
    print({ uidValidity: box.uidValidity, highestModseq: box.highestModseq, messages });
    await c.logout();
}

async function resync() {
    const c = client();
    // Events by step: while SELECT (QRESYNC) runs, while the CHANGEDSINCE
    // fetch runs (imapflow adds VANISHED to it), and live afterwards.
    const events = {};
    for (const step of ['open', 'fetch', 'live']) {
        events[step] = { vanished: [], earlier: [], expunged: [], flags: [] };
    }
    let step = 'open';
    c.on('expunge', (e) => {
        const ev = events[step];
        if (e.vanished) {
            ev.vanished.push(e.uid);
            ev.earlier.push(!!e.earlier);
        } else {
            ev.expunged.push(e.seq);
        }
    });
    c.on('flags', (e) => {
        events[step].flags.push({ uid: e.uid, flags: sorted(e.flags) });
    });
    await c.connect();
    const box = await c.mailboxOpen('INBOX', {
        uidValidity: BigInt(uidValidity),
        changedSince: BigInt(modseq)
    });
    step = 'fetch';
    // The same question the other way: what changed since MODSEQ.
    const changed = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true }, { uid: true, changedSince: BigInt(modseq) })) {
        changed.push({ uid: m.uid, flags: sorted(m.flags) });
    }
    step = 'live';
    print({
        step: 'resynced',
        open: events.open,
        fetch: events.fetch,
        changed,
        exists: c.mailbox.exists,
        highestModseq: box.highestModseq
    });
    // Stay selected (imapflow IDLEs on its own) until the other session's
    // changes arrive.
    const live = events.live;
    const deadline = Date.now() + 20000;
    while ((live.vanished.length + live.expunged.length < 1 || live.flags.length < 1) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
    }
    print({ step: 'live', ...live, exists: c.mailbox.exists });
    await c.logout();
}

try {
    if (mode === 'sync') {
        await sync();
    } else if (mode === 'resync') {
        await resync();
    } else {
        throw new Error(`unknown mode ${mode}`);
    }
} catch (err) {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
}
