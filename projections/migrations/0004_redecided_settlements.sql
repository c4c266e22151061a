-- A status recognised late re-decides stays already decided (policy.md §12): 大病 is paid after the
-- settlement too (hifmi_adjusted, beside maf_adjusted), the stay's assistance base moves with it
-- (assist_base_delta), and the status of the re-decision is kept beside the one first applied.
ALTER TABLE settlement
    ADD COLUMN hifmi_adjusted numeric(14,2) NOT NULL DEFAULT 0,
    ADD COLUMN assist_base_delta numeric(14,2) NOT NULL DEFAULT 0,
    ADD COLUMN redecided_status text;
