"""Operations: what operators read (status, trails, dead letters), metrics, the plot, the demo."""
