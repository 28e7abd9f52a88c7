/** The Orchard release this server reports in /api/health and to the dashboard. */
export const ORCHARD_VERSION = "0.1.0";
