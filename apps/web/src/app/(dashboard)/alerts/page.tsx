import type { Metadata } from "next";
import { AlertsPanel } from "@/components/alerts/alerts-panel";

export const metadata: Metadata = { title: "Alerts" };

/** Every alert; /alerts?device=ID shows one device's. */
export default async function AlertsPage({ searchParams }: { searchParams: Promise<{ device?: string | string[] }> }) {
  const { device } = await searchParams;
  const deviceId = Array.isArray(device) ? device[0] : device;
  return <AlertsPanel key={deviceId ?? ""} deviceId={deviceId || undefined} />;
}
