// Just enough IMAP (RFC 9051 / 3501) to play "Thunderbird changed
// something": one session, tagged commands, answers read to their tag.
import { connect } from "node:net";

export class Imap {
  static async open(hostPort) {
    const [host, port] = hostPort.split(":");
    const socket = connect(Number(port), host);
    const imap = new Imap(socket);
    await imap.until((line) => line.startsWith("* OK"));
    return imap;
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = "";
    this.lines = [];
    this.waiting = null;
    this.tag = 0;
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      this.buffer += chunk;
      let end;
      while ((end = this.buffer.indexOf("\r\n")) >= 0) {
        this.lines.push(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 2);
      }
      this.waiting?.();
    });
  }

  /** Lines up to the first that `done` accepts (within 10 s). */
  until(done) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`IMAP: no answer; got ${this.lines.join(" | ")}`)), 10000);
      const look = () => {
        const at = this.lines.findIndex(done);
        if (at < 0) return;
        clearTimeout(timer);
        this.waiting = null;
        resolve(this.lines.splice(0, at + 1));
      };
      this.waiting = look;
      look();
    });
  }

  /** Sends a command; its lines, failing unless it ends in OK. */
  async command(text) {
    const tag = `n${++this.tag}`;
    this.socket.write(`${tag} ${text}\r\n`);
    const lines = await this.until((line) => line.startsWith(`${tag} `));
    if (!lines.at(-1).startsWith(`${tag} OK`)) throw new Error(`IMAP ${text}: ${lines.join(" | ")}`);
    return lines;
  }

  close() {
    this.socket.destroy();
  }
}
