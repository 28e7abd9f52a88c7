-- Device names are unique without regard to case, and no name is another device's id
-- (apps/web/src/server/services/device-names.ts). Devices that already share a name, or
-- whose name is another device's id, are renamed first: in enrollment order, the first
-- keeps its name and each later one gets the first free "<name>-2", "<name>-3", ...
-- (cut to fit 64 characters).
DO $$
DECLARE
  d RECORD;
  candidate TEXT;
  n INT;
BEGIN
  CREATE TEMP TABLE orchard_taken_names (name TEXT PRIMARY KEY) ON COMMIT DROP;
  FOR d IN SELECT id, name FROM "Device" ORDER BY "enrolledAt", id LOOP
    candidate := d.name;
    n := 1;
    WHILE EXISTS (SELECT 1 FROM orchard_taken_names t WHERE t.name = lower(candidate))
       OR EXISTS (
         SELECT 1 FROM "Device" o
         WHERE o.id <> d.id AND (lower(o.id) = lower(candidate) OR (n > 1 AND lower(o.name) = lower(candidate)))
       ) LOOP
      n := n + 1;
      candidate := left(d.name, 64 - length('-' || n)) || '-' || n;
    END LOOP;
    IF candidate <> d.name THEN
      UPDATE "Device" SET name = candidate WHERE id = d.id;
    END IF;
    INSERT INTO orchard_taken_names (name) VALUES (lower(candidate));
  END LOOP;
END $$;

CREATE UNIQUE INDEX "Device_name_lower_key" ON "Device" (lower("name"));
