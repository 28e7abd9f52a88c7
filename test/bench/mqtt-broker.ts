/**
 * A plain MQTT 3.1.1 broker (Aedes, no authentication) in its own process, for the
 * fleet-ingest benchmark: the server reaches it through MQTT_URL as it would a lab
 * Mosquitto, and a plain subscriber can count what the broker delivers.
 * Usage: node --import tsx test/bench/mqtt-broker.ts PORT
 */
import net from "node:net";
import { Aedes } from "aedes";

const port = Number(process.argv[2] ?? 1883);
const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
server.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => process.stdout.write(`broker listening on ${port}\n`));
process.on("SIGTERM", () => broker.close(() => server.close(() => process.exit(0))));
