import type { Metadata } from "next";
import { EnrollPanel } from "@/components/enroll/enroll-panel";

export const metadata: Metadata = { title: "Enroll a device" };

export default function EnrollPage() {
  return <EnrollPanel />;
}
